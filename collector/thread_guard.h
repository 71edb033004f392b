// guarded(): the one boundary every collector thread runs its body inside.
//
// An exception that reaches a thread's entry point is a failure of that thread, never a silence
// and never an abort without a word: it is logged (`event=thread_failed thread=... error=...`),
// counted (tally_threads_failed_total) and kept in SelfMetrics, which turns /healthz to 503 with
// the reason. The thread then ends; the process stays up to say so.
// Thread-safety: call from the thread being guarded.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <string>

#include "self_metrics.h"

namespace tally::collector {

template <typename Fn>
void guarded(const std::string& thread, SelfMetrics& metrics, Fn&& body) noexcept {
  std::string error;
  try {
    body();
    return;
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {  // not silent: logged, counted and on /healthz like any other failure
    error = "an exception that is not a std::exception";
  }
  spdlog::critical("event=thread_failed thread={} error=\"{}\"", thread, error);
  metrics.thread_failed(thread, error);
}

}  // namespace tally::collector
