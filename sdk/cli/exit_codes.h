// Exit codes of the `tally` command-line tool (docs/CLI.md). Scripts rely on them: never
// renumber, only add.
#pragma once

namespace tally::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,        // bad command line, or invalid input caught before anything was sent
  kExitUnreachable = 2,  // collector not reachable, timed out, not acknowledging, or 503
  kExitRejected = 3,  // the collector refused: bad query (400/422), batch INVALID, unexpected reply
  kExitNotFound = 4,  // unknown metric or endpoint (404)
};

}  // namespace tally::cli
