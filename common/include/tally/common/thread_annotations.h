// Lock annotations the compiler checks: which mutex guards a member (GUARDED_BY), what a function
// needs held (REQUIRES) or must not hold (EXCLUDES). Clang's -Wthread-safety checks them (preset
// thread-safety); under GCC they expand to nothing. The names and meanings are Clang's documented
// set (clang.llvm.org/docs/ThreadSafetyAnalysis.html, "mutex.h"), as Abseil spells them.
//
//   class Queue {
//     void push(int v) EXCLUDES(mu_);
//     void drain() REQUIRES(mu_);
//     tally::Mutex mu_;
//     std::deque<int> items_ GUARDED_BY(mu_);
//   };
//
// libstdc++'s std::mutex carries no annotations: use tally::Mutex / tally::MutexLock
// (tally/common/mutex.h), which do.
// Thread-safety: macros only.
#pragma once

#if defined(__clang__)
#define TALLY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TALLY_THREAD_ANNOTATION(x)  // GCC has no thread-safety analysis
#endif

// A type that is a lock (a mutex): CAPABILITY("mutex").
#define CAPABILITY(x) TALLY_THREAD_ANNOTATION(capability(x))
// An RAII type that holds a capability for its lifetime (MutexLock).
#define SCOPED_CAPABILITY TALLY_THREAD_ANNOTATION(scoped_lockable)
// A member read or written only while the capability is held.
#define GUARDED_BY(x) TALLY_THREAD_ANNOTATION(guarded_by(x))
// A pointer member whose pointee is read or written only while the capability is held.
#define PT_GUARDED_BY(x) TALLY_THREAD_ANNOTATION(pt_guarded_by(x))
// Lock ordering: this capability is taken before / after the listed ones.
#define ACQUIRED_BEFORE(...) TALLY_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) TALLY_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
// The caller must hold the capability (exclusively / at least shared).
#define REQUIRES(...) TALLY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) TALLY_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
// The function takes / releases the capability (exclusively, shared, or either for RELEASE).
#define ACQUIRE(...) TALLY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) TALLY_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) TALLY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) TALLY_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) TALLY_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
// The function takes the capability when it returns the given value.
#define TRY_ACQUIRE(...) TALLY_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) TALLY_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
// The caller must not hold the capability (the function takes it itself).
#define EXCLUDES(...) TALLY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// The function checks at run time that the capability is held; the analysis takes it as held.
#define ASSERT_CAPABILITY(x) TALLY_THREAD_ANNOTATION(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) TALLY_THREAD_ANNOTATION(assert_shared_capability(x))
// The function returns a reference to the capability.
#define RETURN_CAPABILITY(x) TALLY_THREAD_ANNOTATION(lock_returned(x))
// Turns the analysis off for one function; say why next to it.
#define NO_THREAD_SAFETY_ANALYSIS TALLY_THREAD_ANNOTATION(no_thread_safety_analysis)
