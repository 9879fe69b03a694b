// Internal: boundary checks that throw adamas::Error with a formatted message.
#pragma once

#include <fmt/format.h>

#include "adamas/common/error.h"

#define ADAMAS_CHECK(cond, ...)                                   \
  do {                                                            \
    if (!(cond)) throw ::adamas::Error(fmt::format(__VA_ARGS__)); \
  } while (0)

// Debug-only invariant for hot loops.
#ifdef NDEBUG
#define ADAMAS_DCHECK(cond) ((void)0)
#else
#include <cassert>
#define ADAMAS_DCHECK(cond) assert(cond)
#endif
