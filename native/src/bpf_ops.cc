#include "bpf_ops.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "sluice_maps.h"

static_assert(sizeof(struct sluice_enrollment) == 8, "sluice_enrollment layout");
static_assert(sizeof(struct sluice_vip_key) == 20, "sluice_vip_key layout");
static_assert(sizeof(struct sluice_vip_value) == 8, "sluice_vip_value layout");
static_assert(sizeof(struct sluice_orig_dst) == 32, "sluice_orig_dst layout");
static_assert(sizeof(struct sluice_tuple_key) == 36, "sluice_tuple_key layout");
static_assert(sizeof(struct sluice_config) == 8, "sluice_config layout");
static_assert(sizeof(struct sluice_strict) == 8, "sluice_strict layout");
static_assert(sizeof(struct sluice_inbound) == 8, "sluice_inbound layout");

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sluice {
namespace {

// libbpf prints through one global callback; a load running on some thread
// collects what libbpf says about it (the verifier log among it) here.
thread_local std::string* t_log = nullptr;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!t_log || level == LIBBPF_DEBUG) return 0;
  char buf[4096];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (n > 0) t_log->append(buf, std::min<size_t>(n, sizeof(buf) - 1));
  return 0;
}

std::once_flag g_print_once;

int Errno() { return errno ? -errno : -EIO; }

void SetV4Mapped(uint8_t* dst, const in_addr& a) {
  memset(dst, 0, 10);
  dst[10] = 0xff;
  dst[11] = 0xff;
  memcpy(dst + 12, &a, 4);
}

int SockaddrTo16(const sockaddr_storage& ss, uint8_t* addr, uint16_t* port) {
  if (ss.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
    SetV4Mapped(addr, s->sin_addr);
    *port = s->sin_port;
    return 0;
  }
  if (ss.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    memcpy(addr, &s->sin6_addr, 16);
    *port = s->sin6_port;
    return 0;
  }
  return -EAFNOSUPPORT;
}

}  // namespace

int LoadObject(const std::string& path, const std::string& pin_root, LoadedObject* out,
               std::string* log) {
  std::call_once(g_print_once, [] { libbpf_set_print(LibbpfPrint); });
  t_log = log;
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
  bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
  int err = libbpf_get_error(obj);
  if (err) {
    t_log = nullptr;
    return err < 0 ? err : -err;
  }
  err = bpf_object__load(obj);
  t_log = nullptr;
  if (err) {
    bpf_object__close(obj);
    return err < 0 ? err : -err;
  }
  out->obj = obj;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) out->programs.push_back(bpf_program__name(prog));
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    out->maps.push_back(MapInfo{bpf_map__name(map), bpf_map__fd(map), bpf_map__type(map),
                                bpf_map__key_size(map), bpf_map__value_size(map),
                                bpf_map__max_entries(map)});
  }
  return 0;
}

void CloseObject(LoadedObject* lo) {
  if (lo->obj) bpf_object__close(lo->obj);
  lo->obj = nullptr;
  lo->programs.clear();
  lo->maps.clear();
}

int AttachCgroup(LoadedObject* lo, const std::string& prog_name, const std::string& cgroup_path,
                 const std::string& link_pin, bool* reused) {
  *reused = false;
  if (!lo->obj) return -EBADF;
  bpf_program* prog = bpf_object__find_program_by_name(lo->obj, prog_name.c_str());
  if (!prog) return -ENOENT;
  int prog_fd = bpf_program__fd(prog);

  int cg_fd = open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg_fd < 0) return Errno();

  int link_fd = bpf_obj_get(link_pin.c_str());
  if (link_fd >= 0) {
    // A link survived a restart: keep it if it belongs to this cgroup and
    // hook, and swap the new program in without a gap.
    bpf_link_info info;
    memset(&info, 0, sizeof(info));
    uint32_t len = sizeof(info);
    int err = bpf_obj_get_info_by_fd(link_fd, &info, &len);
    struct stat st;
    if (!err && fstat(cg_fd, &st) == 0 && info.type == BPF_LINK_TYPE_CGROUP &&
        info.cgroup.cgroup_id == st.st_ino &&
        info.cgroup.attach_type == bpf_program__expected_attach_type(prog)) {
      err = bpf_link_update(link_fd, prog_fd, nullptr);
      close(link_fd);
      close(cg_fd);
      if (err) return err < 0 ? err : -err;
      *reused = true;
      return 0;
    }
    // Stale link (other cgroup or hook): replace it.
    bpf_link_detach(link_fd);
    close(link_fd);
    unlink(link_pin.c_str());
  }

  bpf_link* link = bpf_program__attach_cgroup(prog, cg_fd);
  int err = libbpf_get_error(link);
  close(cg_fd);
  if (err) return err < 0 ? err : -err;
  err = bpf_link__pin(link, link_pin.c_str());
  if (err) {
    bpf_link__destroy(link);  // not pinned: destroying detaches it
    return err < 0 ? err : -err;
  }
  // The pin keeps the link (and the attachment) alive: destroying our handle
  // only closes the fd (bpf_link__disconnect would leak it).
  bpf_link__destroy(link);
  return 0;
}

int AttachTc(LoadedObject* lo, const std::string& prog_name, int ifindex, bool egress) {
  if (!lo->obj) return -EBADF;
  bpf_program* prog = bpf_object__find_program_by_name(lo->obj, prog_name.c_str());
  if (!prog) return -ENOENT;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) return err;
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(prog), .flags = BPF_TC_F_REPLACE, .handle = 0x5e, .priority = 1);
  err = bpf_tc_attach(&hook, &opts);
  return err < 0 ? err : 0;
}

int DetachTc(int ifindex, bool egress) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 0x5e, .priority = 1);
  int err = bpf_tc_detach(&hook, &opts);
  // No such interface (it left with its pod) counts as nothing to detach.
  if (err == -ENODEV || err == -EINVAL) return -ENOENT;
  return err < 0 ? err : 0;
}

int OpenPinned(const std::string& pin, int* fd) {
  *fd = bpf_obj_get(pin.c_str());
  return *fd < 0 ? Errno() : 0;
}

int DetachPinnedLink(const std::string& link_pin) {
  int fd = bpf_obj_get(link_pin.c_str());
  if (fd < 0) return Errno();
  int err = bpf_link_detach(fd);
  close(fd);
  if (err && errno != EINVAL) return Errno();
  if (unlink(link_pin.c_str()) != 0) return Errno();
  return 0;
}

int MapLookup(int fd, const void* key, void* value) {
  return bpf_map_lookup_elem(fd, key, value) ? Errno() : 0;
}

int MapUpdate(int fd, const void* key, const void* value, uint64_t flags) {
  return bpf_map_update_elem(fd, key, value, flags) ? Errno() : 0;
}

int MapDelete(int fd, const void* key) { return bpf_map_delete_elem(fd, key) ? Errno() : 0; }

int MapEntries(int fd, uint32_t key_size, uint32_t value_size, std::vector<uint8_t>* keys,
               std::vector<uint8_t>* values, size_t* count) {
  std::vector<uint8_t> cur(key_size), next(key_size), val(value_size);
  *count = 0;
  bool first = true;
  // Bounded: a map being filled concurrently cannot keep us here forever.
  for (size_t guard = 0; guard < (1u << 24); guard++) {
    int err = bpf_map_get_next_key(fd, first ? nullptr : cur.data(), next.data());
    if (err) {
      if (errno == ENOENT) return 0;
      return Errno();
    }
    first = false;
    if (bpf_map_lookup_elem(fd, next.data(), val.data()) == 0) {
      keys->insert(keys->end(), next.begin(), next.end());
      values->insert(values->end(), val.begin(), val.end());
      (*count)++;
    } else if (errno != ENOENT) {
      return Errno();
    }
    cur.swap(next);
  }
  return -E2BIG;
}

int MapCount(int fd, uint32_t key_size, size_t* count) {
  std::vector<uint8_t> cur(key_size), next(key_size);
  *count = 0;
  bool first = true;
  // Bounded: a map whose keys change meanwhile (a deleted current key makes
  // a hash map start over) cannot keep a worker thread here.
  for (size_t guard = 0; guard < (1u << 22); guard++) {
    if (bpf_map_get_next_key(fd, first ? nullptr : cur.data(), next.data())) return errno == ENOENT ? 0 : Errno();
    first = false;
    (*count)++;
    cur.swap(next);
  }
  return -E2BIG;
}

int PossibleCpus() { return libbpf_num_possible_cpus(); }

namespace {

// Runs fn inside the netns at netns_path. setns() changes the calling
// thread's namespace, so this happens on a thread that exists only for it,
// never on the JS thread or a shared pool thread.
int InNetns(const std::string& netns_path, const std::function<int()>& fn) {
  int result = 0;
  std::thread t([&] {
    int ns_fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) {
      result = Errno();
      return;
    }
    int err = setns(ns_fd, CLONE_NEWNET) != 0 ? Errno() : 0;
    close(ns_fd);
    result = err ? err : fn();
  });
  t.join();
  return result;
}

// Counts TCP sockets in state ESTABLISHED (01) in a /proc/net/tcp{,6} file.
int CountEstablished(const char* file, uint32_t* count) {
  FILE* f = fopen(file, "re");
  if (!f) return errno == ENOENT ? 0 : Errno();
  char line[512];
  bool header = true;
  while (fgets(line, sizeof(line), f)) {
    if (header) {
      header = false;
      continue;
    }
    char local[64], remote[64], state[8];
    if (sscanf(line, "%*s %63s %63s %7s", local, remote, state) == 3 && strcmp(state, "01") == 0) (*count)++;
  }
  fclose(f);
  return 0;
}

}  // namespace

int NetnsCookie(const std::string& netns_path, uint64_t* cookie) {
  return InNetns(netns_path, [&]() -> int {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return Errno();
    socklen_t len = sizeof(*cookie);
    int err = getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) != 0 ? Errno() : 0;
    close(s);
    return err;
  });
}

int NetnsEstablishedTcp(const std::string& netns_path, uint32_t* count) {
  *count = 0;
  return InNetns(netns_path, [&]() -> int {
    // thread-self: this thread's netns, not the process's.
    int err = CountEstablished("/proc/thread-self/net/tcp", count);
    return err ? err : CountEstablished("/proc/thread-self/net/tcp6", count);
  });
}

int CaptureInbound(LoadedObject* lo, const std::string& prog, const std::string& netns_path,
                   const std::string& ifname, uint16_t port, int* listen_fd, int* ifindex) {
  *listen_fd = -1;
  *ifindex = 0;
  if (!lo->obj) return -EBADF;
  return InNetns(netns_path, [&]() -> int {
    unsigned idx = if_nametoindex(ifname.c_str());
    if (idx == 0) return Errno();
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) return Errno();
    int one = 1;
    // No SO_REUSEPORT: bpf_sk_assign refuses reuseport sockets before Linux
    // 6.5, and only one agent holds a pod's listener at a time.
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    int err = 0;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(s, 4096) != 0)
      err = Errno();
    if (!err) err = AttachTc(lo, prog, static_cast<int>(idx), false);
    if (err) {
      close(s);
      return err;
    }
    *listen_fd = s;
    *ifindex = static_cast<int>(idx);
    return 0;
  });
}

int OriginalDstByFd(int tuple_map_fd, int sock_fd, void* value, bool remove) {
  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof(peer), llen = sizeof(local);
  if (getpeername(sock_fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) return Errno();
  if (getsockname(sock_fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0) return Errno();
  sluice_tuple_key key;
  memset(&key, 0, sizeof(key));
  int err = SockaddrTo16(peer, key.src_addr, &key.src_port);
  if (!err) err = SockaddrTo16(local, key.dst_addr, &key.dst_port);
  if (err) return err;
  if (bpf_map_lookup_elem(tuple_map_fd, &key, value) != 0) return Errno();
  if (remove) bpf_map_delete_elem(tuple_map_fd, &key);
  return 0;
}

int BtfStructLayout(const std::string& obj_path, const std::string& struct_name, uint32_t* size,
                    std::vector<BtfMember>* members) {
  btf* b = btf__parse_elf(obj_path.c_str(), nullptr);
  int err = libbpf_get_error(b);
  if (err) return err < 0 ? err : -err;
  int id = btf__find_by_name_kind(b, struct_name.c_str(), BTF_KIND_STRUCT);
  if (id < 0) {
    btf__free(b);
    return -ENOENT;
  }
  const btf_type* t = btf__type_by_id(b, id);
  *size = t->size;
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); i++, m++) {
    long msize = btf__resolve_size(b, m->type);
    members->push_back(BtfMember{btf__name_by_offset(b, m->name_off),
                                 btf_member_bit_offset(t, i) / 8,
                                 msize < 0 ? 0u : static_cast<uint32_t>(msize)});
  }
  btf__free(b);
  return 0;
}

}  // namespace sluice
