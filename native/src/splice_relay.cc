#include "splice_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>

namespace sluice {

namespace {

constexpr size_t kPipeSize = 1 << 20;      // per direction in flight: bounded back-pressure
constexpr size_t kSpliceChunk = 1 << 20;

int SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  return fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}

void ResetClose(int fd) {
  // SO_LINGER 0: close() sends RST, so the peer sees the reset we saw.
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

// A relayed socket carries SO_LINGER 0 from the hand-over on: if the process
// dies (kill -9, a crash), the kernel's close resets both ends instead of
// sending a FIN that would look like a clean end of the transfer. A pair
// that ends cleanly turns it off again before its own close.
void ArmResetOnCrash(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

void GracefulClose(int fd) {
  linger l{0, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

}  // namespace

// Pipes are taken from a per-worker pool while bytes are in flight and given
// back once drained, so an idle connection holds no pipe (two descriptors
// per pair, not six: 10k idle connections stay within ordinary fd limits).
struct PipePool {
  std::vector<std::pair<int, int>> free;
  static constexpr size_t kMaxFree = 256;

  bool Take(int* r, int* w) {
    if (!free.empty()) {
      *r = free.back().first;
      *w = free.back().second;
      free.pop_back();
      return true;
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    fcntl(p[1], F_SETPIPE_SZ, kPipeSize);  // best effort: limited by pipe-max-size
    *r = p[0];
    *w = p[1];
    return true;
  }

  // Only empty pipes come back.
  void Give(int r, int w) {
    if (free.size() < kMaxFree) {
      free.emplace_back(r, w);
    } else {
      close(r);
      close(w);
    }
  }

  ~PipePool() {
    for (auto& [r, w] : free) {
      close(r);
      close(w);
    }
  }
};

// One direction: src -> pipe -> dst.
struct Direction {
  int src = -1;
  int dst = -1;
  int pipe_r = -1;
  int pipe_w = -1;
  size_t in_pipe = 0;
  bool src_eof = false;
  bool done = false;  // EOF forwarded (dst shut down for writing)
  std::string initial;  // bytes to write to dst before anything from src
  std::atomic<uint64_t> bytes{0};
};

struct SpliceRelay::Pair {
  uint64_t id = 0;
  int fd_a = -1;
  int fd_b = -1;
  Direction ab;  // a -> b
  Direction ba;  // b -> a
  // epoll events registered now for each socket (0: not registered).
  uint32_t interest_a = 0;
  uint32_t interest_b = 0;
  bool finished = false;
  int error = 0;
};

struct SpliceRelay::Worker {
  int epfd = -1;
  int wake = -1;
  std::thread thread;
  std::mutex mu;
  std::vector<Pair*> incoming;
  std::vector<uint64_t> resets;  // ids to end with a reset, guarded by mu
  std::unordered_map<uint64_t, Pair*> pairs;  // owned; touched by the worker thread
  PipePool pipes;                              // worker thread only
  std::mutex pairs_mu;                         // guards pairs for Stats()
  std::atomic<bool> stop{false};
};

SpliceRelay::SpliceRelay(DoneCallback done) : done_(std::move(done)) {}

SpliceRelay::~SpliceRelay() { Stop(); }

namespace {

void ReleasePipe(Direction& d, PipePool& pool) {
  if (d.pipe_r < 0) return;
  if (d.in_pipe == 0) {
    pool.Give(d.pipe_r, d.pipe_w);
  } else {
    close(d.pipe_r);
    close(d.pipe_w);
  }
  d.pipe_r = d.pipe_w = -1;
}

bool Buffered(const Direction& d) { return !d.initial.empty() || d.in_pipe > 0; }

// Writes what is held for dst (bytes from before the hand-over, then the
// pipe). Stops quietly when dst is full; returns -errno on a socket error.
int Flush(Direction& d) {
  while (!d.initial.empty()) {
    ssize_t n = send(d.dst, d.initial.data(), d.initial.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    d.initial.erase(0, n);
    d.bytes += n;
  }
  while (d.in_pipe > 0) {
    ssize_t n = splice(d.pipe_r, nullptr, d.dst, nullptr, d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    d.in_pipe -= n;
    d.bytes += n;
  }
  return 0;
}

// One readiness event's worth of progress in one direction: flush what is
// held, read one chunk from src if nothing is held, flush it. Epoll is level
// triggered, so there is no need to drain src until EAGAIN (that would cost
// a wasted syscall per small message). Returns -errno on a socket error.
int Pump(Direction& d, PipePool& pool) {
  if (d.done) return 0;
  int err = Flush(d);
  if (!err && !Buffered(d) && !d.src_eof) {
    if (d.pipe_r < 0 && !pool.Take(&d.pipe_r, &d.pipe_w)) return -errno;
    ssize_t n = splice(d.src, nullptr, d.pipe_w, nullptr, kSpliceChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d.in_pipe += n;
      err = Flush(d);
    } else if (n == 0) {
      d.src_eof = true;
    } else if (errno != EAGAIN) {
      err = -errno;
    }
  }
  if (!err && d.src_eof && !Buffered(d)) {
    shutdown(d.dst, SHUT_WR);  // forward the FIN; the other direction stays open
    d.done = true;
  }
  if (d.in_pipe == 0) ReleasePipe(d, pool);  // idle: no pipe held
  return err;
}

// What a socket must be watched for: readable while its bytes can go
// somewhere (nothing held back for the other side), writable while bytes
// for it are held back. Nothing to watch: not registered at all, so a
// hung-up socket waiting for its peer does not wake the thread in a loop.
uint32_t Interest(const Direction& from, const Direction& to) {
  uint32_t ev = 0;
  if (!from.done && !from.src_eof && !Buffered(from)) ev |= EPOLLIN | EPOLLRDHUP;
  if (Buffered(to)) ev |= EPOLLOUT;
  return ev;
}

void Watch(int epfd, int fd, uint32_t want, uint32_t* registered, uint64_t tag) {
  if (want == *registered) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = tag;
  if (want == 0)
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  else
    epoll_ctl(epfd, *registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  *registered = want;
}

void InitDirection(Direction& d, int src, int dst) {
  d.src = src;
  d.dst = dst;
}

void CloseDirection(Direction& d) {
  if (d.pipe_r >= 0) close(d.pipe_r);
  if (d.pipe_w >= 0) close(d.pipe_w);
  d.pipe_r = d.pipe_w = -1;
}

}  // namespace

// Event tags: the pair's address with the low bit saying which socket (pairs
// are at least 8-byte aligned); 0 is the wake-up eventfd.
static uint64_t Tag(void* pair, int side) { return reinterpret_cast<uintptr_t>(pair) | static_cast<uint64_t>(side); }

void SpliceRelay::Run(Worker* wp) {
  epoll_event events[256];
  std::vector<Pair*> finished;
  auto finish = [&](Pair* p, int err) {
    p->finished = true;
    Watch(wp->epfd, p->fd_a, 0, &p->interest_a, 0);
    Watch(wp->epfd, p->fd_b, 0, &p->interest_b, 0);
    if (err) {
      ResetClose(p->fd_a);
      ResetClose(p->fd_b);
    } else {
      GracefulClose(p->fd_a);
      GracefulClose(p->fd_b);
    }
    CloseDirection(p->ab);
    CloseDirection(p->ba);
    finished.push_back(p);
    p->error = err;
  };
  auto progress = [&](Pair* p, bool a_ready, bool b_ready, bool a_writable, bool b_writable) {
    int err = 0;
    if (a_ready || b_writable) err = Pump(p->ab, wp->pipes);
    if (!err && (b_ready || a_writable)) err = Pump(p->ba, wp->pipes);
    if (err || (p->ab.done && p->ba.done)) {
      finish(p, err);
      return;
    }
    Watch(wp->epfd, p->fd_a, Interest(p->ab, p->ba), &p->interest_a, Tag(p, 0));
    Watch(wp->epfd, p->fd_b, Interest(p->ba, p->ab), &p->interest_b, Tag(p, 1));
  };
  // New pairs and reset requests, queued by Add() and Reset(). Taken on every
  // turn, so one whose wake-up write failed still starts within the timeout.
  auto take_queued = [&] {
    std::vector<Pair*> fresh;
    std::vector<uint64_t> resets;
    {
      std::lock_guard<std::mutex> lock(wp->mu);
      fresh.swap(wp->incoming);
      resets.swap(wp->resets);
    }
    for (Pair* p : fresh) {
      {
        std::lock_guard<std::mutex> lock(wp->pairs_mu);
        wp->pairs[p->id] = p;
      }
      progress(p, true, true, true, true);
    }
    for (uint64_t id : resets) {
      auto it = wp->pairs.find(id);
      if (it == wp->pairs.end() || it->second->finished) continue;
      finish(it->second, -ECONNABORTED);
    }
  };
  while (!wp->stop) {
    int n = epoll_wait(wp->epfd, events, 256, 500);
    // Empty the wake-up counter before taking the queue: a write that lands
    // after the take stays counted and wakes the next turn.
    uint64_t woken;
    while (read(wp->wake, &woken, sizeof(woken)) > 0) {
    }
    take_queued();
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == 0) continue;  // the wake-up, handled above
      auto* p = reinterpret_cast<Pair*>(tag & ~uint64_t{1});
      if (p->finished) continue;  // an earlier event of this batch ended it
      uint32_t e = events[i].events;
      bool readable = e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
      bool writable = e & (EPOLLOUT | EPOLLHUP | EPOLLERR);
      if ((tag & 1) == 0)
        progress(p, readable, false, writable, false);
      else
        progress(p, false, readable, false, writable);
    }
    for (Pair* p : finished) {
      {
        std::lock_guard<std::mutex> lock(wp->pairs_mu);
        wp->pairs.erase(p->id);
      }
      RelayResult r{p->id, p->ab.bytes.load(), p->ba.bytes.load(), p->error ? -p->error : 0};
      delete p;
      done_(r);
    }
    finished.clear();
  }
}

int SpliceRelay::Start(int threads) {
  if (!workers_.empty()) return -EALREADY;
  for (int i = 0; i < threads; i++) {
    auto w = std::make_unique<Worker>();
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // 0 = wake-up; pairs carry their (never null) pointer
    int err = 0;
    if (w->epfd < 0 || w->wake < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake, &ev) != 0) err = errno ? -errno : -EIO;
    if (!err) {
      Worker* wp = w.get();
      try {
        w->thread = std::thread([this, wp] { Run(wp); });
      } catch (const std::system_error& e) {
        err = e.code().value() ? -e.code().value() : -EAGAIN;
      }
    }
    if (err) {
      // Nothing half-started is left: this worker's descriptors, and the
      // workers started before it, go.
      if (w->epfd >= 0) close(w->epfd);
      if (w->wake >= 0) close(w->wake);
      Stop();
      return err;
    }
    workers_.push_back(std::move(w));
  }
  return 0;
}

void SpliceRelay::Stop() {
  for (auto& w : workers_) {
    w->stop = true;
    uint64_t one = 1;
    if (write(w->wake, &one, sizeof(one)) < 0) {
      // the worker also wakes on its epoll timeout
    }
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
    for (auto& [id, p] : w->pairs) {
      ResetClose(p->fd_a);
      ResetClose(p->fd_b);
      CloseDirection(p->ab);
      CloseDirection(p->ba);
      delete p;
    }
    for (Pair* p : w->incoming) {
      ResetClose(p->fd_a);
      ResetClose(p->fd_b);
      CloseDirection(p->ab);
      CloseDirection(p->ba);
      delete p;
    }
    close(w->epfd);
    close(w->wake);
  }
  workers_.clear();
}

int SpliceRelay::Add(uint64_t id, int fd_a, int fd_b, const std::string& initial_b_to_a) {
  if (workers_.empty()) return -ENOTCONN;
  int err = SetNonBlocking(fd_a);
  if (!err) err = SetNonBlocking(fd_b);
  if (err) return err;
  ArmResetOnCrash(fd_a);
  ArmResetOnCrash(fd_b);
  auto* p = new Pair();
  p->id = id;
  p->fd_a = fd_a;
  p->fd_b = fd_b;
  InitDirection(p->ab, fd_a, fd_b);
  InitDirection(p->ba, fd_b, fd_a);
  p->ba.initial = initial_b_to_a;
  Worker* w = workers_[next_worker_++ % workers_.size()].get();
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->incoming.push_back(p);
  }
  // The pair is the worker's now: a failed wake-up must not hand the
  // descriptors back (the worker takes its queue on every turn anyway).
  uint64_t one = 1;
  if (write(w->wake, &one, sizeof(one)) < 0) {
    // taken within the worker's epoll timeout
  }
  return 0;
}

void SpliceRelay::Reset(uint64_t id) {
  // The pair lives on one worker; ask each (ids are unique, others ignore it).
  for (auto& w : workers_) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->resets.push_back(id);
    }
    uint64_t one = 1;
    if (write(w->wake, &one, sizeof(one)) < 0) {
      // the worker also wakes on its epoll timeout and sees the request then
    }
  }
}

std::vector<RelayStats> SpliceRelay::Stats() {
  std::vector<RelayStats> out;
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->pairs_mu);
    for (auto& [id, p] : w->pairs) out.push_back(RelayStats{id, p->ab.bytes.load(), p->ba.bytes.load()});
  }
  return out;
}

}  // namespace sluice
