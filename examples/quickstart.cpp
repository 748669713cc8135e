// Registers a trace, moves it through a pipeline and completes it.
// Usage: quickstart [REDIS_URL]
#include <boost/asio.hpp>
#include <iostream>
#include <tracewatch/tracewatch.hpp>

namespace asio = boost::asio;

asio::awaitable<int> handle_request(tracewatch::redis::connection& conn) {
  tracewatch::registry traces(conn);  // compat layout, prefix "sg", reference TTLs
  std::string id = tracewatch::generate_trace_id();
  tracewatch::metadata fields = {{"platform", "web"}};

  auto created = co_await traces.async_create(id, "RECEIVED", fields);
  if (!created) {
    std::cerr << "create failed: " << created.error().what() << '\n';
    co_return 1;
  }
  co_await traces.async_advance(id, "INFERENCE");
  co_await traces.async_advance(id, "EGRESS");

  auto done = co_await traces.async_complete(id);
  if (!done || !done->applied) {
    std::cerr << "complete did not apply\n";
    co_return 1;
  }
  std::cout << id << ' ' << done->state << '\n';  // <id> COMPLETED
  co_return 0;
}

int main(int argc, char** argv) {
  auto config = tracewatch::redis::parse_url(argc > 1 ? argv[1] : "redis://127.0.0.1:6379");
  if (!config) {
    std::cerr << config.error().what() << '\n';
    return 2;
  }
  asio::io_context io;
  tracewatch::redis::connection conn(io.get_executor(), *config);
  conn.start();
  auto result = asio::co_spawn(io, [&]() -> asio::awaitable<int> {
    int code = co_await handle_request(conn);
    conn.close();
    co_return code;
  }, asio::use_future);
  io.run();
  return result.get();
}
