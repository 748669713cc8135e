#include <array>
#include <memory>
#include <stdexcept>

#include <openssl/evp.h>

#include "tracewatch/redis/connection.hpp"

namespace tracewatch::redis {
namespace {

// Redis identifies a cached script by the lowercase hex SHA1 of its source.
std::string sha1_hex(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL EVP_Digest(SHA1) failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0x0f];
  }
  return hex;
}

}  // namespace

script::script(std::string source) : source_(std::move(source)), sha1_(sha1_hex(source_)) {}

}  // namespace tracewatch::redis
