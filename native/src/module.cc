#include <napi.h>

#include "addon_glue.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return sluice::InitGlue(env, exports); }

NODE_API_MODULE(sluice, Init)
