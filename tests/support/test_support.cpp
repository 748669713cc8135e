#include "test_support.hpp"

#include <hiredis/hiredis.h>
#include <stdexcept>

namespace tracewatch::testing {
namespace {

redis::reply convert(const redisReply* r) {
  redis::reply out;
  switch (r->type) {
    case REDIS_REPLY_NIL: out.type = redis::reply::kind::nil; break;
    case REDIS_REPLY_STATUS: out.type = redis::reply::kind::status; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = redis::reply::kind::error; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = redis::reply::kind::integer; out.integer = r->integer; break;
    case REDIS_REPLY_STRING: out.type = redis::reply::kind::string; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ARRAY:
      out.type = redis::reply::kind::array;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default: break;
  }
  return out;
}

}  // namespace

raw_redis::raw_redis(const std::string& socket_path) {
  redisContext* c = redisConnectUnix(socket_path.c_str());
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    throw std::runtime_error("raw_redis: cannot connect to " + socket_path + ": " + why);
  }
  context_ = c;
}

raw_redis::~raw_redis() { redisFree(static_cast<redisContext*>(context_)); }

redis::reply raw_redis::command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(static_cast<redisContext*>(context_),
                                                      static_cast<int>(args.size()), argv.data(),
                                                      lengths.data()));
  if (r == nullptr) throw std::runtime_error("raw_redis: connection failed");
  redis::reply out = convert(r);
  freeReplyObject(r);
  return out;
}

std::string raw_redis::str(const std::vector<std::string>& args) { return command(args).str; }

long long raw_redis::integer(const std::vector<std::string>& args) { return command(args).integer; }

std::vector<std::string> raw_redis::strings(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (auto& e : command(args).elements) out.push_back(e.str);
  return out;
}

void RedisTest::SetUpTestSuite() {
  auto started = local_redis::start();
  if (!started) throw std::runtime_error("cannot start redis-server: " + started.error().what());
  server_.emplace(std::move(*started));
}

void RedisTest::TearDownTestSuite() { server_.reset(); }

void RedisTest::SetUp() {
  raw_ = std::make_unique<raw_redis>(server_->socket_path());
  raw_->command({"FLUSHALL"});
}

void RedisClientTest::SetUp() {
  RedisTest::SetUp();
  auto config = redis::parse_url(server().unix_url());
  ASSERT_TRUE(config) << config.error().what();
  conn_ = std::make_unique<redis::connection>(io_.get_executor(), *config);
  conn_->start();
  auto ready = run([this]() { return conn_->async_wait_ready(std::chrono::seconds(10)); });
  ASSERT_TRUE(ready) << ready.error().what();
}

void RedisClientTest::TearDown() {
  if (conn_) conn_->close();
  io_.run_for(std::chrono::milliseconds(10));
  conn_.reset();
}

}  // namespace tracewatch::testing
