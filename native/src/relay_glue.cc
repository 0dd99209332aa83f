// N-API glue for the splice relay: one per process, its results reported on
// the JS thread through a thread-safe function.
#include "addon_glue.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <memory>

#include "glue_util.h"
#include "socket_ops.h"
#include "splice_relay.h"

namespace sluice {
namespace {

// One relay per process; its results are reported on the JS thread.
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
  int a = -1, b = -1;
  int dup_err = DupCloexec(info[1].As<Napi::Number>().Int32Value(), &a);
  if (!dup_err) dup_err = DupCloexec(info[2].As<Napi::Number>().Int32Value(), &b);
  if (dup_err) {
    if (a >= 0) close(a);
    MakeError(env, dup_err, "relay dup", "").ThrowAsJavaScriptException();
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

Napi::Value RelayStopJs(const Napi::CallbackInfo& info) {
  if (g_relay) {
    g_relay->Stop();
    g_relay.reset();
    g_relay_done.Release();
  }
  return info.Env().Undefined();
}

}  // namespace

void InitRelayGlue(Napi::Env env, Napi::Object exports) {
  exports.Set("relayStart", Napi::Function::New(env, RelayStartJs));
  exports.Set("relayAdd", Napi::Function::New(env, RelayAddJs));
  exports.Set("relayStats", Napi::Function::New(env, RelayStatsJs));
  exports.Set("relayStop", Napi::Function::New(env, RelayStopJs));
  exports.Set("relayReset", Napi::Function::New(env, RelayResetJs));
}

}  // namespace sluice
