// Plain C++ over libbpf. Every function returns 0 or a negative errno and
// never touches N-API, so it can run on any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct bpf_object;

namespace sluice {

struct MapInfo {
  std::string name;
  int fd;
  uint32_t type;
  uint32_t key_size;
  uint32_t value_size;
  uint32_t max_entries;
};

struct LoadedObject {
  bpf_object* obj = nullptr;
  std::vector<std::string> programs;
  std::vector<MapInfo> maps;
};

// Opens and loads an object file; maps marked for pinning are pinned under
// (or re-used from) pin_root. On failure, log receives libbpf's messages,
// including the verifier log.
int LoadObject(const std::string& path, const std::string& pin_root,
               LoadedObject* out, std::string* log);
void CloseObject(LoadedObject* lo);

// Attaches program prog to the cgroup with a bpf_link pinned at link_pin.
// If link_pin already holds a link, the program inside it is replaced
// atomically (no window without capture) and *reused is set.
int AttachCgroup(LoadedObject* lo, const std::string& prog, const std::string& cgroup_path,
                 const std::string& link_pin, bool* reused);
// Attaches a tc program to an interface of the calling thread's netns (clsact
// egress or ingress), replacing what sluice attached there before. The
// filter goes away with the interface.
int AttachTc(LoadedObject* lo, const std::string& prog, int ifindex, bool egress);

// Removes the filter AttachTc attached to an interface (same handle and
// priority). -ENOENT if there is none (or no such interface).
int DetachTc(int ifindex, bool egress);

// Detaches the link pinned at link_pin and removes the pin. -ENOENT if none.
int DetachPinnedLink(const std::string& link_pin);
// Opens the pinned object (map, program, link) at pin; *fd owned by the caller.
int OpenPinned(const std::string& pin, int* fd);

int MapLookup(int fd, const void* key, void* value);
int MapUpdate(int fd, const void* key, const void* value, uint64_t flags);
int MapDelete(int fd, const void* key);
// Iterates all entries; values are value_size bytes (per-CPU maps: all CPUs).
int MapEntries(int fd, uint32_t key_size, uint32_t value_size,
               std::vector<uint8_t>* keys, std::vector<uint8_t>* values, size_t* count);

// Counts the keys of a map (no values read): for fill metrics, on a worker thread.
int MapCount(int fd, uint32_t key_size, size_t* count);

int PossibleCpus();

// Network namespace cookie of the netns at path (e.g. /run/netns/x). Enters
// the netns on a thread of its own.
int NetnsCookie(const std::string& netns_path, uint64_t* cookie);
// Established TCP connections in that netns (IPv4 and IPv6).
int NetnsEstablishedTcp(const std::string& netns_path, uint32_t* count);

// Inside the netns at netns_path: opens a TCP listener on 0.0.0.0:port
// (backlog 4096) and attaches prog at tc ingress of ifname.
// *listen_fd (owned by the caller, valid in any netns) and *ifindex (in that
// netns) are set on success; nothing is left open on failure.
int CaptureInbound(LoadedObject* lo, const std::string& prog, const std::string& netns_path,
                   const std::string& ifname, uint16_t port, int* listen_fd, int* ifindex);

// Looks the tuple of an accepted socket (peer, local) up in the tuple map.
int OriginalDstByFd(int tuple_map_fd, int sock_fd, void* value, bool remove);

struct BtfMember {
  std::string name;
  uint32_t offset;
  uint32_t size;
};
int BtfStructLayout(const std::string& obj_path, const std::string& struct_name,
                    uint32_t* size, std::vector<BtfMember>* members);

}  // namespace sluice
