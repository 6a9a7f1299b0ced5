// Starting an httplib::Server the way both of the bridge's HTTP servers need it: a few
// workers, short timeouts, one request per connection, a real listen backlog, its own thread.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "status.h"

namespace httplib {
class Server;
}

namespace bridge {

// A server with the defaults set; add routes, then call listen_in_background().
std::unique_ptr<httplib::Server> make_http_server(int workers);

// Binds host:port and serves on *thread (named thread_name). `what` names the server in the
// error message (which configuration keys set the address).
[[nodiscard]] Status listen_in_background(httplib::Server& server, const std::string& host, int port,
                                          const char* thread_name, const std::string& what,
                                          std::thread* thread);

}  // namespace bridge
