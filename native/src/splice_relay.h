// A byte relay between pairs of connected TCP sockets, run by worker threads
// with epoll and splice(2): bytes go socket -> pipe -> socket inside the
// kernel and never reach the JS thread. Plain C++, no N-API.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sluice {

struct RelayResult {
  uint64_t id;
  uint64_t bytes_a_to_b;
  uint64_t bytes_b_to_a;
  // 0: both directions ended with FIN; otherwise the errno that ended it
  // (ECONNRESET when a peer reset; the other side was reset too).
  int error;
};

struct RelayStats {
  uint64_t id;
  uint64_t bytes_a_to_b;
  uint64_t bytes_b_to_a;
};

class SpliceRelay {
 public:
  using DoneCallback = std::function<void(const RelayResult&)>;

  explicit SpliceRelay(DoneCallback done);
  ~SpliceRelay();

  int Start(int threads);
  void Stop();

  // Takes ownership of fd_a and fd_b (already connected, any blocking mode).
  // initial_b_to_a: bytes already read from b that must reach a first.
  int Add(uint64_t id, int fd_a, int fd_b, const std::string& initial_b_to_a);

  std::vector<RelayStats> Stats();

  // Ends a pair at once with a reset on both sockets (a policy no longer
  // allows it). Its result is reported with error ECONNABORTED. Unknown ids
  // (already finished) are ignored. Thread-safe.
  void Reset(uint64_t id);

 private:
  struct Pair;
  struct Worker;

  void Run(Worker* w);

  DoneCallback done_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint64_t> next_worker_{0};
};

}  // namespace sluice
