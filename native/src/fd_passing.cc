#include "fd_passing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace sluice {
namespace {

// More than the agent ever passes (its listeners); bounds the control buffer.
constexpr size_t kMaxFds = 16;

long long NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// Waits for `events` on fd until deadline_ms (CLOCK_MONOTONIC): 0, or -errno.
int WaitFor(int fd, short events, long long deadline_ms) {
  for (;;) {
    long long left = deadline_ms - NowMs();
    if (left <= 0) return -ETIMEDOUT;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return -errno;
  }
}

}  // namespace

int SendFds(int sock, const std::string& payload, const std::vector<int>& fds, int timeout_ms) {
  if (fds.size() > kMaxFds || payload.empty()) return -EINVAL;
  long long deadline = NowMs() + timeout_ms;
  size_t sent = 0;
  bool fds_sent = false;
  while (sent < payload.size()) {
    iovec iov{const_cast<char*>(payload.data()) + sent, payload.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (!fds_sent && !fds.empty()) {
      // The descriptors ride on the first byte written.
      memset(control, 0, sizeof(control));
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int w = WaitFor(sock, POLLOUT, deadline);
        if (w < 0) return w;
        continue;
      }
      return -errno;
    }
    fds_sent = true;
    sent += static_cast<size_t>(n);
  }
  return 0;
}

int ReceiveFds(const std::string& path, const std::string& request, int timeout_ms, std::string* payload, std::vector<int>* fds, int* sock_out) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  memcpy(addr.sun_path, path.data(), path.size());
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -errno;
  auto fail = [&](int err) {
    close(sock);
    for (int fd : *fds) close(fd);
    fds->clear();
    return err;
  };
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) return fail(-errno);
  // Bounded waits from here on: an old agent that hangs must not hang this one.
  if (fcntl(sock, F_SETFL, O_NONBLOCK) < 0) return fail(-errno);
  long long deadline = NowMs() + timeout_ms;
  size_t written = 0;
  while (written < request.size()) {
    ssize_t n = send(sock, request.data() + written, request.size() - written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(-errno);
      int w = WaitFor(sock, POLLOUT, deadline);
      if (w < 0) return fail(w);
      continue;
    }
    written += static_cast<size_t>(n);
  }
  char buf[4096];
  for (;;) {
    iovec iov{buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(-errno);
      int w = WaitFor(sock, POLLIN, deadline);
      if (w < 0) return fail(w);
      continue;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const int* received = reinterpret_cast<const int*>(CMSG_DATA(c));
      for (size_t i = 0; i < count; i++) fds->push_back(received[i]);
    }
    // Descriptors beyond the control buffer were dropped by the kernel: refuse a partial set.
    if (msg.msg_flags & MSG_CTRUNC) return fail(-EMSGSIZE);
    if (n == 0) break;
    payload->append(buf, static_cast<size_t>(n));
    if (payload->size() > (1u << 20)) return fail(-EMSGSIZE);
    if (payload->find('\n') != std::string::npos) break;
  }
  *sock_out = sock;
  return 0;
}

}  // namespace sluice
