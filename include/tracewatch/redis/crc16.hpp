// Redis Cluster key slots: the CRC16 of a key's hash tag, modulo 16384.
//
// Hash tags work as in Redis: when a key contains a '{' and, after the first
// '{', a '}' with at least one byte between them, only the bytes between
// that '{' and the first '}' after it are hashed. Otherwise the whole key
// is. The unit tests check these rules against the slots that CLUSTER
// KEYSLOT reports in Redis 7.0.
//
// Example:
//   key_slot("123456789")              == 12739  (CRC16 0x31C3)
//   key_slot("{user1000}.following")   == key_slot("{user1000}.followers")
//   hash_tag("foo{}{bar}")             == "foo{}{bar}"  (empty tag: whole key)
//   hash_tag("foo{{bar}}zap")          == "{bar"

#pragma once

#include <cstdint>
#include <string_view>

namespace tracewatch::redis {

// The number of hash slots of a Redis Cluster.
inline constexpr std::uint16_t kClusterSlots = 16384;

// CRC16-CCITT in the XMODEM variant (polynomial 0x1021, initial value 0, no
// reflection), the checksum Redis Cluster uses for key slots.
std::uint16_t crc16(std::string_view data) noexcept;

// The part of `key` that decides its slot: the hash tag when the key has a
// non-empty one, else the whole key. The result points into `key`.
std::string_view hash_tag(std::string_view key) noexcept;

// The cluster slot of `key`, 0 to kClusterSlots - 1.
std::uint16_t key_slot(std::string_view key) noexcept;

}  // namespace tracewatch::redis
