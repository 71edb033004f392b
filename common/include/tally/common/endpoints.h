// The collector's default addresses, written once: the collector listens on them, the SDK, the CLI
// and the dashboard connect to them (docs/format/wire.md, README). Loopback only by default.
// Header-only and free of protobuf so the SDK's public headers may include it.
#pragma once

namespace tally {

inline constexpr const char* kDefaultIngestEndpoint = "tcp://127.0.0.1:7070";  // ZeroMQ ROUTER
inline constexpr const char* kDefaultHttpAddress = "127.0.0.1:7071";           // HTTP API, listen
inline constexpr const char* kDefaultCollectorUrl = "http://127.0.0.1:7071";   // HTTP API, connect
inline constexpr int kDefaultHttpPort = 7071;
inline constexpr const char* kDefaultLiveEndpoint = "tcp://127.0.0.1:7072";  // ZeroMQ PUB
inline constexpr const char* kDefaultStatsdAddress = "127.0.0.1:8125";       // StatsD over UDP

}  // namespace tally
