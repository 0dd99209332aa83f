// N-API glue over the plain C++ parts (bpf_ops, splice_relay, fd_passing,
// socket_ops): argument checks, errors as JS objects, async workers. One file
// per concern; each adds its functions to the module's exports.
#pragma once
#include <napi.h>

namespace sluice {
Napi::Object InitGlue(Napi::Env env, Napi::Object exports);

// BPF objects, programs, pins and maps (bpf_glue.cc), schemaVersion.
void InitBpfGlue(Napi::Env env, Napi::Object exports);
// Network namespaces and interfaces (netns_glue.cc).
void InitNetnsGlue(Napi::Env env, Napi::Object exports);
// The splice relay (relay_glue.cc).
void InitRelayGlue(Napi::Env env, Napi::Object exports);
// Socket options and descriptor passing (socket_glue.cc).
void InitSocketGlue(Napi::Env env, Napi::Object exports);
}  // namespace sluice
