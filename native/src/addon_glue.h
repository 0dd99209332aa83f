// N-API glue over bpf_ops: argument checks, errors as JS objects, async workers.
#pragma once
#include <napi.h>

namespace sluice {
Napi::Object InitGlue(Napi::Env env, Napi::Object exports);
}
