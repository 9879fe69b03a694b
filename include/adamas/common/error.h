// Errors at API and file boundaries: one exception type whose message names the value and what
// was expected ("head_dim must be a power of two in [16, 256], got 100").
#pragma once

#include <stdexcept>
#include <string>

namespace adamas {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace adamas
