// N-API glue for BPF objects, programs and maps: the loaded object (its
// programs attached to cgroups and interfaces, the inbound listener in a
// pod's netns), pins, map operations, BTF layouts.
#include "addon_glue.h"

#include <errno.h>

#include <memory>

#include "bpf_ops.h"
#include "glue_util.h"
#include "sluice_maps.h"

namespace sluice {
namespace {

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

  Napi::Value AttachTcJs(const Napi::CallbackInfo& info);

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

// A tc program on an interface of this netns (AttachTc): netlink round trips,
// run on a worker thread so that attaching a filter per pod never stalls
// the thread that accepts connections.
class AttachTcWorker : public Napi::AsyncWorker {
 public:
  AttachTcWorker(Napi::Env env, Napi::Object holder, LoadedObject* lo, std::string prog, int ifindex, bool egress)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), holder_(Napi::Persistent(holder)),
        lo_(lo), prog_(std::move(prog)), ifindex_(ifindex), egress_(egress) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { err_ = AttachTc(lo_, prog_, ifindex_, egress_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(MakeError(env, err_, "attach " + prog_ + " to ifindex", std::to_string(ifindex_)).Value());
      return;
    }
    deferred_.Resolve(env.Undefined());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference holder_;  // keeps the object alive while we run
  LoadedObject* lo_;
  std::string prog_;
  int ifindex_;
  bool egress_;
  int err_ = 0;
};

Napi::Value BpfObject::AttachTcJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "program") || !CheckNumber(info, 1, "ifindex")) return info.Env().Undefined();
  if (!loaded_.obj) {
    MakeError(info.Env(), -EBADF, "attach", info[0].As<Napi::String>()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  bool egress = info.Length() < 3 || info[2].ToBoolean();
  auto* w = new AttachTcWorker(info.Env(), Value(), &loaded_, info[0].As<Napi::String>(),
                               info[1].As<Napi::Number>().Int32Value(), egress);
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

// Counts a map's keys on a libuv worker thread: walking a large map must not
// hold up the JS thread (accept, relay hand-over).
class MapCountWorker : public Napi::AsyncWorker {
 public:
  MapCountWorker(Napi::Env env, int fd, uint32_t key_size)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), key_size_(key_size) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { err_ = MapCount(fd_, key_size_, &count_); }
  void OnOK() override {
    if (err_)
      deferred_.Reject(MakeError(Env(), err_, "map count", "").Value());
    else
      deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(count_)));
  }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  uint32_t key_size_;
  size_t count_ = 0;
  int err_ = 0;
};

Napi::Value MapCountJs(const Napi::CallbackInfo& info) {
  if (!CheckNumber(info, 0, "fd") || !CheckNumber(info, 1, "keySize")) return info.Env().Undefined();
  auto* w = new MapCountWorker(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Uint32Value());
  w->Queue();
  return w->Promise();
}

Napi::Value PossibleCpusJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PossibleCpus());
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

}  // namespace

void InitBpfGlue(Napi::Env env, Napi::Object exports) {
  BpfObject::Init(env);
  exports.Set("loadObject", Napi::Function::New(env, LoadObjectJs));
  exports.Set("detachPinnedLink", Napi::Function::New(env, DetachPinnedLinkJs));
  exports.Set("detachTc", Napi::Function::New(env, DetachTcJs));
  exports.Set("openPinned", Napi::Function::New(env, OpenPinnedJs));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookupJs));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdateJs));
  exports.Set("mapDelete", Napi::Function::New(env, MapDeleteJs));
  exports.Set("mapEntries", Napi::Function::New(env, MapEntriesJs));
  exports.Set("mapCount", Napi::Function::New(env, MapCountJs));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpusJs));
  exports.Set("originalDstByFd", Napi::Function::New(env, OriginalDstByFdJs));
  exports.Set("btfStructLayout", Napi::Function::New(env, BtfStructLayoutJs));
  exports.Set("schemaVersion", Napi::Number::New(env, SLUICE_SCHEMA_VERSION));
}

}  // namespace sluice
