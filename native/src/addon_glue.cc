#include "addon_glue.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include <memory>

#include "bpf_ops.h"
#include "fd_passing.h"
#include "splice_relay.h"
#include "sluice_maps.h"

namespace sluice {
namespace {

// "attach sluice_connect4 to /sys/fs/cgroup/x: Operation not permitted (EPERM)"
Napi::Error MakeError(Napi::Env env, int err, const std::string& op, const std::string& target,
                      const std::string& details = "") {
  int e = err < 0 ? -err : err;
  const char* name = strerrorname_np(e);
  std::string code = name ? name : "EUNKNOWN";
  std::string msg = op + (target.empty() ? "" : " " + target) + ": " + strerror(e) + " (" + code + ")";
  Napi::Error error = Napi::Error::New(env, msg);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, e));
  error.Set("op", Napi::String::New(env, op));
  error.Set("target", Napi::String::New(env, target));
  if (!details.empty()) error.Set("details", Napi::String::New(env, details));
  return error;
}

bool CheckBuffer(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsBuffer()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool CheckNumber(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool CheckString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a string").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// ---- BpfObject: a loaded object; maps and programs live until close() ----

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::FunctionReference* constructor;

  static void Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "BpfObject",
                                    {InstanceMethod("attachCgroup", &BpfObject::AttachCgroupJs),
                                     InstanceMethod("attachTc", &BpfObject::AttachTcJs),
                                     InstanceMethod("captureInbound", &BpfObject::CaptureInboundJs),
                                     InstanceMethod("close", &BpfObject::Close),
                                     InstanceAccessor("programs", &BpfObject::Programs, nullptr),
                                     InstanceAccessor("maps", &BpfObject::Maps, nullptr)});
    constructor = new Napi::FunctionReference(Napi::Persistent(fn));
  }

  explicit BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
    if (info.Length() == 1 && info[0].IsExternal()) {
      auto* lo = info[0].As<Napi::External<LoadedObject>>().Data();
      loaded_ = std::move(*lo);
      delete lo;
    }
  }

  ~BpfObject() override { CloseObject(&loaded_); }

  LoadedObject* loaded() { return &loaded_; }

 private:
  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Array a = Napi::Array::New(info.Env(), loaded_.programs.size());
    for (size_t i = 0; i < loaded_.programs.size(); i++) a.Set(i, loaded_.programs[i]);
    return a;
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, loaded_.maps.size());
    for (size_t i = 0; i < loaded_.maps.size(); i++) {
      const MapInfo& m = loaded_.maps[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", m.name);
      o.Set("fd", m.fd);
      o.Set("type", m.type);
      o.Set("keySize", m.key_size);
      o.Set("valueSize", m.value_size);
      o.Set("maxEntries", m.max_entries);
      a.Set(i, o);
    }
    return a;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseObject(&loaded_);
    return info.Env().Undefined();
  }

  Napi::Value AttachCgroupJs(const Napi::CallbackInfo& info);
  Napi::Value CaptureInboundJs(const Napi::CallbackInfo& info);

  Napi::Value AttachTcJs(const Napi::CallbackInfo& info) {
    if (!CheckString(info, 0, "program") || !CheckNumber(info, 1, "ifindex")) return info.Env().Undefined();
    std::string prog = info[0].As<Napi::String>();
    int ifindex = info[1].As<Napi::Number>().Int32Value();
    bool egress = info.Length() < 3 || info[2].ToBoolean();
    int err = AttachTc(&loaded_, prog, ifindex, egress);
    if (err) MakeError(info.Env(), err, "attach " + prog + " to ifindex", std::to_string(ifindex)).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }

  LoadedObject loaded_;
};

Napi::FunctionReference* BpfObject::constructor = nullptr;

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::string path, std::string pin_root)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)), pin_root_(std::move(pin_root)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    lo_ = std::make_unique<LoadedObject>();
    err_ = LoadObject(path_, pin_root_, lo_.get(), &log_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeError(env, err_, "load", path_, log_).Value());
      return;
    }
    Napi::Object obj =
        BpfObject::constructor->New({Napi::External<LoadedObject>::New(env, lo_.release())});
    deferred_.Resolve(obj);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_, pin_root_, log_;
  std::unique_ptr<LoadedObject> lo_;
  int err_ = 0;
};

class AttachWorker : public Napi::AsyncWorker {
 public:
  AttachWorker(Napi::Env env, Napi::Object holder, LoadedObject* lo, std::string prog,
               std::string cgroup, std::string pin)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)),
        holder_(Napi::Persistent(holder)), lo_(lo), prog_(std::move(prog)),
        cgroup_(std::move(cgroup)), pin_(std::move(pin)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { err_ = AttachCgroup(lo_, prog_, cgroup_, pin_, &reused_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeError(env, err_, "attach " + prog_ + " to", cgroup_).Value());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("reused", reused_);
    deferred_.Resolve(r);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference holder_;  // keeps the object alive while we run
  LoadedObject* lo_;
  std::string prog_, cgroup_, pin_;
  bool reused_ = false;
  int err_ = 0;
};

Napi::Value BpfObject::AttachCgroupJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "program") || !CheckString(info, 1, "cgroupPath") ||
      !CheckString(info, 2, "linkPin"))
    return info.Env().Undefined();
  if (!loaded_.obj) {
    MakeError(info.Env(), -EBADF, "attach", info[0].As<Napi::String>()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto* w = new AttachWorker(info.Env(), Value(), &loaded_, info[0].As<Napi::String>(),
                             info[1].As<Napi::String>(), info[2].As<Napi::String>());
  w->Queue();
  return w->Promise();
}

// A listener and the inbound tc program inside one pod's netns (CaptureInbound).
class CaptureInboundWorker : public Napi::AsyncWorker {
 public:
  CaptureInboundWorker(Napi::Env env, Napi::Object holder, LoadedObject* lo, std::string prog, std::string netns,
                       std::string ifname, uint16_t port)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), holder_(Napi::Persistent(holder)),
        lo_(lo), prog_(std::move(prog)), netns_(std::move(netns)), ifname_(std::move(ifname)), port_(port) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { err_ = CaptureInbound(lo_, prog_, netns_, ifname_, port_, &fd_, &ifindex_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeError(env, err_, "capture inbound on " + ifname_ + " (port " + std::to_string(port_) + ") in", netns_).Value());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("fd", fd_);
    r.Set("ifindex", ifindex_);
    deferred_.Resolve(r);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference holder_;  // keeps the object alive while we run
  LoadedObject* lo_;
  std::string prog_, netns_, ifname_;
  uint16_t port_;
  int fd_ = -1, ifindex_ = 0, err_ = 0;
};

Napi::Value BpfObject::CaptureInboundJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "program") || !CheckString(info, 1, "netnsPath") || !CheckString(info, 2, "interface") ||
      !CheckNumber(info, 3, "port"))
    return info.Env().Undefined();
  int port = info[3].As<Napi::Number>().Int32Value();
  if (!loaded_.obj || port < 1 || port > 65535) {
    MakeError(info.Env(), loaded_.obj ? -EINVAL : -EBADF, "capture inbound in", info[1].As<Napi::String>())
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto* w = new CaptureInboundWorker(info.Env(), Value(), &loaded_, info[0].As<Napi::String>(),
                                     info[1].As<Napi::String>(), info[2].As<Napi::String>(),
                                     static_cast<uint16_t>(port));
  w->Queue();
  return w->Promise();
}

// Work inside a pod's netns: its cookie, or how many TCP connections it has.
class NetnsWorker : public Napi::AsyncWorker {
 public:
  enum class What { kCookie, kEstablishedTcp };
  NetnsWorker(Napi::Env env, std::string path, What what)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), what_(what) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    err_ = what_ == What::kCookie ? NetnsCookie(path_, &cookie_) : NetnsEstablishedTcp(path_, &count_);
  }
  void OnOK() override {
    if (err_)
      deferred_.Reject(MakeError(Env(), err_, what_ == What::kCookie ? "netns cookie of" : "count connections in", path_).Value());
    else if (what_ == What::kCookie)
      deferred_.Resolve(Napi::BigInt::New(Env(), cookie_));
    else
      deferred_.Resolve(Napi::Number::New(Env(), count_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  What what_;
  uint64_t cookie_ = 0;
  uint32_t count_ = 0;
  int err_ = 0;
};

// ---- module functions ----

Napi::Value LoadObjectJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "path") || !CheckString(info, 1, "pinRoot")) return info.Env().Undefined();
  auto* w = new LoadWorker(info.Env(), info[0].As<Napi::String>(), info[1].As<Napi::String>());
  w->Queue();
  return w->Promise();
}

Napi::Value DetachPinnedLinkJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "linkPin")) return info.Env().Undefined();
  std::string pin = info[0].As<Napi::String>();
  int err = DetachPinnedLink(pin);
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) {
    MakeError(info.Env(), err, "detach link", pin).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), true);
}

// detachTc(ifindex, egress): true if sluice's filter was there and is gone, false if there was none.
Napi::Value DetachTcJs(const Napi::CallbackInfo& info) {
  if (!CheckNumber(info, 0, "ifindex")) return info.Env().Undefined();
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  int err = DetachTc(ifindex, info.Length() < 2 || info[1].ToBoolean());
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) {
    MakeError(info.Env(), err, "detach tc filter from ifindex", std::to_string(ifindex)).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), true);
}

// openPinned(path): the descriptor of a pinned map, program or link (close it with closeFd).
Napi::Value OpenPinnedJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "pin")) return info.Env().Undefined();
  std::string pin = info[0].As<Napi::String>();
  int fd = -1;
  int err = OpenPinned(pin, &fd);
  if (err) {
    MakeError(info.Env(), err, "open pinned object", pin).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value MapLookupJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd") || !CheckBuffer(info, 1, "key") || !CheckNumber(info, 2, "valueSize"))
    return env.Undefined();
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  uint32_t vsize = info[2].As<Napi::Number>().Uint32Value();
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, vsize);
  int err = MapLookup(info[0].As<Napi::Number>().Int32Value(), key.Data(), value.Data());
  if (err == -ENOENT) return env.Null();
  if (err) {
    MakeError(env, err, "map lookup", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return value;
}

Napi::Value MapUpdateJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd") || !CheckBuffer(info, 1, "key") || !CheckBuffer(info, 2, "value"))
    return env.Undefined();
  uint64_t flags = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 0;
  int err = MapUpdate(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Buffer<uint8_t>>().Data(),
                      info[2].As<Napi::Buffer<uint8_t>>().Data(), flags);
  if (err) MakeError(env, err, "map update", "").ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value MapDeleteJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd") || !CheckBuffer(info, 1, "key")) return env.Undefined();
  int err = MapDelete(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Buffer<uint8_t>>().Data());
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) {
    MakeError(env, err, "map delete", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value MapEntriesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd") || !CheckNumber(info, 1, "keySize") || !CheckNumber(info, 2, "valueSize"))
    return env.Undefined();
  std::vector<uint8_t> keys, values;
  size_t count = 0;
  int err = MapEntries(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Uint32Value(),
                       info[2].As<Napi::Number>().Uint32Value(), &keys, &values, &count);
  if (err) {
    MakeError(env, err, "map iterate", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
  r.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), values.size()));
  r.Set("count", Napi::Number::New(env, count));
  return r;
}

Napi::Value IfIndexJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "interface")) return info.Env().Undefined();
  std::string name = info[0].As<Napi::String>();
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) {
    MakeError(info.Env(), -errno, "interface", name).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), idx);
}

Napi::Value PossibleCpusJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PossibleCpus());
}

Napi::Value NetnsJs(const Napi::CallbackInfo& info, NetnsWorker::What what) {
  if (!CheckString(info, 0, "netnsPath")) return info.Env().Undefined();
  auto* w = new NetnsWorker(info.Env(), info[0].As<Napi::String>(), what);
  w->Queue();
  return w->Promise();
}

Napi::Value NetnsCookieJs(const Napi::CallbackInfo& info) { return NetnsJs(info, NetnsWorker::What::kCookie); }
Napi::Value NetnsEstablishedTcpJs(const Napi::CallbackInfo& info) {
  return NetnsJs(info, NetnsWorker::What::kEstablishedTcp);
}

Napi::Value OriginalDstByFdJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "mapFd") || !CheckNumber(info, 1, "socketFd")) return env.Undefined();
  bool remove = info.Length() > 2 && info[2].ToBoolean();
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, sizeof(struct sluice_orig_dst));
  int err = OriginalDstByFd(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                            value.Data(), remove);
  if (err == -ENOENT) return env.Null();
  if (err) {
    MakeError(env, err, "original destination of fd", std::to_string(info[1].As<Napi::Number>().Int32Value()))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return value;
}

Napi::Value BtfStructLayoutJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckString(info, 0, "objectPath") || !CheckString(info, 1, "struct")) return env.Undefined();
  std::string path = info[0].As<Napi::String>(), name = info[1].As<Napi::String>();
  uint32_t size = 0;
  std::vector<BtfMember> members;
  int err = BtfStructLayout(path, name, &size, &members);
  if (err) {
    MakeError(env, err, "btf struct " + name + " in", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("size", size);
  Napi::Array a = Napi::Array::New(env, members.size());
  for (size_t i = 0; i < members.size(); i++) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", members[i].name);
    m.Set("offset", members[i].offset);
    m.Set("size", members[i].size);
    a.Set(i, m);
  }
  r.Set("members", a);
  return r;
}

// ---- splice relay: one per process, results reported on the JS thread ----

std::unique_ptr<SpliceRelay> g_relay;
Napi::ThreadSafeFunction g_relay_done;

Napi::Value RelayStartJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "threads")) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "onDone must be a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (g_relay) {
    MakeError(env, -EALREADY, "start relay", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  g_relay_done = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "sluice-relay-done", 0, 1);
  g_relay_done.Unref(env);  // the relay alone never keeps the process alive
  g_relay = std::make_unique<SpliceRelay>([](const RelayResult& r) {
    auto* copy = new RelayResult(r);
    napi_status st = g_relay_done.BlockingCall(copy, [](Napi::Env env, Napi::Function cb, RelayResult* res) {
      cb.Call({Napi::Number::New(env, static_cast<double>(res->id)),
               Napi::Number::New(env, static_cast<double>(res->bytes_a_to_b)),
               Napi::Number::New(env, static_cast<double>(res->bytes_b_to_a)),
               Napi::String::New(env, res->error ? (strerrorname_np(res->error) ?: "EUNKNOWN") : "")});
      delete res;
    });
    if (st != napi_ok) delete copy;
  });
  int err = g_relay->Start(info[0].As<Napi::Number>().Int32Value());
  if (err) {
    g_relay.reset();
    g_relay_done.Release();
    MakeError(env, err, "start relay", "").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

Napi::Value RelayAddJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "id") || !CheckNumber(info, 1, "fdA") || !CheckNumber(info, 2, "fdB")) return env.Undefined();
  if (!g_relay) {
    MakeError(env, -ENOTCONN, "relay add", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string initial;
  if (info.Length() > 3 && info[3].IsBuffer()) {
    auto b = info[3].As<Napi::Buffer<char>>();
    initial.assign(b.Data(), b.Length());
  }
  // Duplicate: the JS sockets are destroyed after the hand-over; the relay
  // keeps the connections through its own descriptors.
  int a = fcntl(info[1].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (a < 0) {
    MakeError(env, -errno, "relay dup", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int b = fcntl(info[2].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (b < 0) {
    int e = errno;
    close(a);
    MakeError(env, -e, "relay dup", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = g_relay->Add(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()), a, b, initial);
  if (err) {
    close(a);
    close(b);
    MakeError(env, err, "relay add", "").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

Napi::Value RelayStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<RelayStats> stats = g_relay ? g_relay->Stats() : std::vector<RelayStats>{};
  Napi::Array a = Napi::Array::New(env, stats.size());
  for (size_t i = 0; i < stats.size(); i++) {
    Napi::Array row = Napi::Array::New(env, 3);
    row.Set(0u, Napi::Number::New(env, static_cast<double>(stats[i].id)));
    row.Set(1u, Napi::Number::New(env, static_cast<double>(stats[i].bytes_a_to_b)));
    row.Set(2u, Napi::Number::New(env, static_cast<double>(stats[i].bytes_b_to_a)));
    a.Set(i, row);
  }
  return a;
}

Napi::Value RelayResetJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "id")) return env.Undefined();
  if (g_relay) g_relay->Reset(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return env.Undefined();
}

// tcpKeepalive(fd, idleSeconds, intervalSeconds, probes, userTimeoutMs):
// the kernel probes an idle peer and fails the socket (ETIMEDOUT) when it
// stops answering; TCP_USER_TIMEOUT bounds how long sent data may stay
// unacknowledged. Node's setKeepAlive() sets only the idle time.
Napi::Value TcpKeepaliveJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (size_t i = 0; i < 5; i++)
    if (!CheckNumber(info, i, "tcpKeepalive argument")) return env.Undefined();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int on = 1;
  int idle = info[1].As<Napi::Number>().Int32Value();
  int intvl = info[2].As<Napi::Number>().Int32Value();
  int cnt = info[3].As<Napi::Number>().Int32Value();
  unsigned int user_timeout = info[4].As<Napi::Number>().Uint32Value();
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout)) < 0) {
    MakeError(env, -errno, "keepalive on fd", std::to_string(fd)).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// socketError(fd): the error pending on a socket (SO_ERROR), 0 when none;
// reading it clears it. libuv reports a reset that arrives after a partial
// read as end-of-file (POLLHUP), so a FIN is checked with this before it is
// forwarded: ECONNRESET here means the peer reset, not closed.
Napi::Value SocketErrorJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd")) return env.Undefined();
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  return Napi::Number::New(env, err);
}

// resetOnClose(fd, on): SO_LINGER {1, 0} when on (a close, or the process
// dying, resets the connection), {0, 0} when off (a normal close).
Napi::Value ResetOnCloseJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd")) return env.Undefined();
  linger l{info.Length() > 1 && info[1].ToBoolean() ? 1 : 0, 0};
  if (setsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_LINGER, &l, sizeof(l)) < 0)
    MakeError(env, -errno, "linger on fd", std::to_string(info[0].As<Napi::Number>().Int32Value())).ThrowAsJavaScriptException();
  return env.Undefined();
}

// sendFds(socketFd, payload: Buffer, fds: number[], timeoutMs): writes the
// payload on a connected unix socket with the descriptors attached
// (SCM_RIGHTS). The receiver gets its own references: closing ours after
// does not close the sockets.
Napi::Value SendFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "socket fd") || !CheckBuffer(info, 1, "payload") || !CheckNumber(info, 3, "timeoutMs")) return env.Undefined();
  if (!info[2].IsArray()) {
    Napi::TypeError::New(env, "fds must be an array of numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, "fds must be an array of numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  Napi::Buffer<char> payload = info[1].As<Napi::Buffer<char>>();
  int err = SendFds(info[0].As<Napi::Number>().Int32Value(), std::string(payload.Data(), payload.Length()), fds,
                    info[3].As<Napi::Number>().Int32Value());
  if (err) MakeError(env, err, "send descriptors on fd", std::to_string(info[0].As<Napi::Number>().Int32Value())).ThrowAsJavaScriptException();
  return env.Undefined();
}

// receiveFds(path, request: Buffer, timeoutMs): { payload: Buffer, fds:
// number[], socket: number } (one reply line; the connection stays open in
// `socket` until the caller closes it), or null when nothing listens at path
// (ENOENT, ECONNREFUSED). Blocks at most timeoutMs; throws on any other failure.
Napi::Value ReceiveFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckString(info, 0, "path") || !CheckBuffer(info, 1, "request") || !CheckNumber(info, 2, "timeoutMs")) return env.Undefined();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<char> request = info[1].As<Napi::Buffer<char>>();
  std::string payload;
  std::vector<int> fds;
  int sock = -1;
  int err = ReceiveFds(path, std::string(request.Data(), request.Length()), info[2].As<Napi::Number>().Int32Value(), &payload, &fds, &sock);
  if (err == -ENOENT || err == -ECONNREFUSED) return env.Null();
  if (err) {
    MakeError(env, err, "receive descriptors from", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("payload", Napi::Buffer<char>::Copy(env, payload.data(), payload.size()));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", list);
  out.Set("socket", Napi::Number::New(env, sock));
  return out;
}

// closeFd(fd): for a received descriptor that is not used after all.
Napi::Value CloseFdJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd")) return env.Undefined();
  close(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

Napi::Value RelayStopJs(const Napi::CallbackInfo& info) {
  if (g_relay) {
    g_relay->Stop();
    g_relay.reset();
    g_relay_done.Release();
  }
  return info.Env().Undefined();
}

}  // namespace

Napi::Object InitGlue(Napi::Env env, Napi::Object exports) {
  BpfObject::Init(env);
  exports.Set("loadObject", Napi::Function::New(env, LoadObjectJs));
  exports.Set("detachPinnedLink", Napi::Function::New(env, DetachPinnedLinkJs));
  exports.Set("detachTc", Napi::Function::New(env, DetachTcJs));
  exports.Set("openPinned", Napi::Function::New(env, OpenPinnedJs));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookupJs));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdateJs));
  exports.Set("mapDelete", Napi::Function::New(env, MapDeleteJs));
  exports.Set("mapEntries", Napi::Function::New(env, MapEntriesJs));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpusJs));
  exports.Set("ifIndex", Napi::Function::New(env, IfIndexJs));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookieJs));
  exports.Set("netnsEstablishedTcp", Napi::Function::New(env, NetnsEstablishedTcpJs));
  exports.Set("originalDstByFd", Napi::Function::New(env, OriginalDstByFdJs));
  exports.Set("btfStructLayout", Napi::Function::New(env, BtfStructLayoutJs));
  exports.Set("relayStart", Napi::Function::New(env, RelayStartJs));
  exports.Set("relayAdd", Napi::Function::New(env, RelayAddJs));
  exports.Set("relayStats", Napi::Function::New(env, RelayStatsJs));
  exports.Set("relayStop", Napi::Function::New(env, RelayStopJs));
  exports.Set("relayReset", Napi::Function::New(env, RelayResetJs));
  exports.Set("tcpKeepalive", Napi::Function::New(env, TcpKeepaliveJs));
  exports.Set("socketError", Napi::Function::New(env, SocketErrorJs));
  exports.Set("resetOnClose", Napi::Function::New(env, ResetOnCloseJs));
  exports.Set("sendFds", Napi::Function::New(env, SendFdsJs));
  exports.Set("receiveFds", Napi::Function::New(env, ReceiveFdsJs));
  exports.Set("closeFd", Napi::Function::New(env, CloseFdJs));
  exports.Set("schemaVersion", Napi::Number::New(env, SLUICE_SCHEMA_VERSION));
  return exports;
}

}  // namespace sluice
