#include <pthread.h>

#include "http_listen.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

namespace bridge {
namespace {
constexpr int kListenBacklog = 1024;
}

std::unique_ptr<httplib::Server> make_http_server(int workers) {
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  // An idle keep-alive connection holds a worker until it closes: a handful of clients that
  // keep theirs open (Soketi's webhook client does, so do browsers and probers) would starve
  // the rest, and stop() would wait for them. One request per connection.
  server->set_keep_alive_max_count(1);
  server->set_keep_alive_timeout(1);
  return server;
}

Status listen_in_background(httplib::Server& server, const std::string& host, int port,
                            const char* thread_name, const std::string& what, std::thread* thread) {
  // The packaged cpp-httplib listens with a backlog of 5: in a burst of requests the kernel
  // drops the rest of the SYNs and each such client waits a second to retry. Keep the
  // listening socket and raise its backlog once bound.
  int listening = -1;
  server.set_socket_options([&listening](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = sock;
  });
  if (!server.bind_to_port(host.c_str(), port)) {
    return Status::error(fmt::format("cannot listen on {}:{} ({})", host, port, what));
  }
  if (listening >= 0) ::listen(listening, kListenBacklog);
  *thread = std::thread([&server, thread_name] {
    pthread_setname_np(pthread_self(), thread_name);
    server.listen_after_bind();
  });
  return Status::ok();
}

}  // namespace bridge
