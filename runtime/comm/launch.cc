#include "runtime/comm/launch.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/base/log.h"

namespace flowc {

const char* launch_variable(const Getenv& getenv, const char* name) {
  const char* value = getenv(name);
  return value && *value ? value : nullptr;
}

namespace {

// Variable `name`'s `value` as a decimal int32 of at least `least`: digits only, no sign or space.
flowc_status parse_count(const char* name, const char* value, int32_t least, int32_t* out_count) {
  int64_t parsed = 0;
  bool digits = *value != '\0';
  for (const char* c = value; digits && *c; ++c) {
    digits = *c >= '0' && *c <= '9' && (parsed = parsed * 10 + (*c - '0')) <= INT32_MAX;
  }
  if (!digits || parsed < least) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s is '%s', not a whole number of at least %d", name,
                             value, least);
  }
  *out_count = int32_t(parsed);
  return nullptr;
}

// A rank and its count from two variables, set together or not at all (*out_set then false).
flowc_status read_pair(const Getenv& getenv, const char* rank_name, const char* size_name, bool* out_set,
                       int32_t* out_rank, int32_t* out_size) {
  const char* rank = launch_variable(getenv, rank_name);
  const char* size = launch_variable(getenv, size_name);
  *out_set = rank || size;
  if (!rank != !size) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s is '%s' but %s is not set: a launcher sets both",
                             rank ? rank_name : size_name, rank ? rank : size, rank ? size_name : rank_name);
  }
  if (!rank) return nullptr;
  FLOWC_RETURN_IF_ERROR(parse_count(rank_name, rank, 0, out_rank));
  FLOWC_RETURN_IF_ERROR(parse_count(size_name, size, 1, out_size));
  if (*out_rank >= *out_size) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s is %d, not below %s = %d", rank_name, *out_rank,
                             size_name, *out_size);
  }
  return nullptr;
}

struct Launcher {
  const char* name;
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;
};

// In the order read_launch_env tries them.
constexpr Launcher kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
};

}  // namespace

flowc_status read_launch_env(const Getenv& getenv, LaunchEnv* out_env) {
  for (const Launcher& launcher : kLaunchers) {
    LaunchEnv env;
    bool set = false, local_set = false;
    FLOWC_RETURN_IF_ERROR(read_pair(getenv, launcher.rank, launcher.size, &set, &env.rank, &env.world_size));
    if (!set) continue;
    FLOWC_RETURN_IF_ERROR(read_pair(getenv, launcher.local_rank, launcher.local_size, &local_set, &env.local_rank,
                                    &env.local_size));
    if (!local_set) {
      // Which ranks share a host is unknown: take them all to share this one. The GPU is then
      // rank % GPUs, right on one host, and on several when each has as many ranks as GPUs.
      env.local_rank = env.rank;
      env.local_size = env.world_size;
    } else if (env.local_size > env.world_size) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s is %d, more than %s = %d", launcher.local_size,
                               env.local_size, launcher.size, env.world_size);
    }
    env.launcher = launcher.name;
    *out_env = env;
    return nullptr;
  }
  return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                           "NCCL needs one process per GPU started by a launcher: mpirun -np N, or torchrun "
                           "--nproc-per-node N (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); none of their "
                           "variables is set");
}


namespace {

// An address as host and port; an IPv6 host is written in brackets ([fe80::1]:29501).
struct HostPort {
  std::string host;
  int32_t port = 0;
};

flowc_status parse_host_port(const char* what, const std::string& address, HostPort* out_at) {
  std::string host, port;
  size_t colon = address.rfind(':');
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close != std::string::npos && close + 1 == colon) host = address.substr(1, close - 1);
  } else if (colon != std::string::npos && address.find(':') == colon) {
    host = address.substr(0, colon);
  }
  if (colon != std::string::npos) port = address.substr(colon + 1);
  int32_t number = 0;
  flowc_status bad_port = port.empty() ? nullptr : parse_count("port", port.c_str(), 1, &number);
  bool ok = !host.empty() && !port.empty() && !bad_port && number <= 65535;
  flowc_status_free(bad_port);
  if (!ok) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "%s is '%s', not host:port with a port of 1 to 65535 (an IPv6 host goes in brackets: "
                             "[fe80::1]:29501)",
                             what, address.c_str());
  }
  *out_at = {host, number};
  return nullptr;
}

}  // namespace

flowc_status read_nccl_bootstrap(const Getenv& getenv, NcclBootstrap* out_bootstrap) {
  NcclBootstrap bootstrap;
  HostPort nccl_root;
  if (const char* comm_id = launch_variable(getenv, "NCCL_COMM_ID")) {
    FLOWC_RETURN_IF_ERROR(parse_host_port("NCCL_COMM_ID", comm_id, &nccl_root));
    bootstrap.comm_id = comm_id;
  }
  static const char* const kWhatToSet =
      "set MASTER_ADDR and MASTER_PORT on every rank as torchrun does (rank 0's host, and a port whose next one is "
      "free too: rank 0 listens on MASTER_PORT + 1), or NCCL_COMM_ID=host:port (rank 0's host and a free port)";
  const char* addr = launch_variable(getenv, "MASTER_ADDR");
  const char* port = launch_variable(getenv, "MASTER_PORT");
  if (!addr || !port) {
    if (!bootstrap.comm_id.empty()) {
      *out_bootstrap = bootstrap;
      return nullptr;
    }
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "NCCL's bootstrap needs an address that every rank can reach, and %s is not set: %s",
                             addr ? "MASTER_PORT" : "MASTER_ADDR", kWhatToSet);
  }
  int32_t number = 0;
  flowc_status bad = parse_count("MASTER_PORT", port, 1, &number);
  if (bad || number >= 65535) {
    flowc_status_free(bad);
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "MASTER_PORT is '%s': rank 0 listens on the port after it, so it must be 1 to 65534; "
                             "or %s",
                             port, kWhatToSet);
  }
  if (!bootstrap.comm_id.empty() && (nccl_root.port == number || nccl_root.port == number + 1)) {
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "NCCL_COMM_ID is '%s', but port %d is %s: NCCL's root needs a port of its own (or "
                             "leave NCCL_COMM_ID unset, and NCCL picks one)",
                             bootstrap.comm_id.c_str(), nccl_root.port,
                             nccl_root.port == number ? "MASTER_PORT, torchrun's store"
                                                      : "MASTER_PORT + 1, where rank 0 hands out NCCL's id");
  }
  bool bare_ipv6 = std::strchr(addr, ':') && addr[0] != '[';
  bootstrap.exchange =
      (bare_ipv6 ? "[" + std::string(addr) + "]" : std::string(addr)) + ":" + std::to_string(number + 1);
  *out_bootstrap = bootstrap;
  return nullptr;
}

flowc_status read_nccl_timeout(const Getenv& getenv, int32_t* out_seconds) {
  const char* value = launch_variable(getenv, "FLOWC_NCCL_TIMEOUT");
  if (!value) {
    *out_seconds = kDefaultNcclTimeout;
    return nullptr;
  }
  flowc_status bad = parse_count("FLOWC_NCCL_TIMEOUT", value, 1, out_seconds);
  if (!bad) return nullptr;
  flowc_status_free(bad);
  return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                           "FLOWC_NCCL_TIMEOUT is '%s', not a whole number of seconds of at least 1 (unset: %d)", value,
                           kDefaultNcclTimeout);
}

namespace {

using Clock = std::chrono::steady_clock;

// A file descriptor, closed with its owner.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// What each rank says first, and what rank 0 answers before the bytes: 32-bit words in network
// order. The magic tells a flowc rank from anything else that reaches the port. Where the answer
// carries the bytes, each rank then acknowledges them, and rank 0 says go once all have.
constexpr uint32_t kMagic = 0x666c7763;  // "flwc"
constexpr size_t kHelloWords = 4;        // magic, rank, size, ready
constexpr size_t kAnswerWords = 3;       // magic, lowest rank not ready (-1: none), bytes that follow
constexpr uint8_t kGotIt = 'a';          // a rank has the bytes
constexpr uint8_t kGo = 'g';             // every rank has them

constexpr size_t kMaxStrays = 64;   // connections held that have not said their rank: the oldest go first
constexpr int kConnectTryMs = 1000;  // one attempt at one of rank 0's addresses
constexpr int kAcceptPauseMs = 50;   // before accepting again, when out of file descriptors

void put_words(const std::vector<uint32_t>& words, uint8_t* out) {
  for (size_t i = 0; i < words.size(); ++i) {
    uint32_t word = htonl(words[i]);
    std::memcpy(out + 4 * i, &word, 4);
  }
}

uint32_t word_at(const uint8_t* data, size_t i) {
  uint32_t word = 0;
  std::memcpy(&word, data + 4 * i, 4);
  return ntohl(word);
}

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return int(std::clamp<int64_t>(left, 0, INT_MAX));
}

constexpr int kClosed = -1;  // what transfer returns when the other side closed the connection

// Moves `bytes` between `fd` (non-blocking) and `data` before the deadline: sends them when
// `sending`, else receives exactly that many. 0, kClosed, ETIMEDOUT or another errno value.
int transfer(int fd, bool sending, uint8_t* data, size_t bytes, Clock::time_point deadline) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = sending ? send(fd, data + done, bytes - done, MSG_NOSIGNAL) : recv(fd, data + done, bytes - done, 0);
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n == 0) return kClosed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno == EPIPE || errno == ECONNRESET ? kClosed : errno;
    pollfd ready{fd, short(sending ? POLLOUT : POLLIN), 0};
    if (ms_left(deadline) == 0) return ETIMEDOUT;
    poll(&ready, 1, ms_left(deadline));
  }
  return 0;
}

std::string peer_name(const sockaddr* address, socklen_t length) {
  char host[NI_MAXHOST] = "?";
  getnameinfo(address, length, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  // An IPv4 caller reaches the dual-stack socket as ::ffff:10.0.0.2; name it as it knows itself.
  bool v4_mapped = std::strncmp(host, "::ffff:", 7) == 0 && std::strchr(host, '.');
  return v4_mapped ? host + 7 : host;
}

// "2, 3 and 5", at most eight of them named.
std::string name_ranks(const std::vector<int32_t>& ranks) {
  std::string text;
  size_t named = std::min<size_t>(ranks.size(), 8);
  for (size_t i = 0; i < named; ++i) {
    text += (i == 0 ? "" : i + 1 == ranks.size() ? " and " : ", ") + std::to_string(ranks[i]);
  }
  if (named < ranks.size()) text += " and " + std::to_string(ranks.size() - named) + " more";
  return text;
}

// Rank 0's listening socket on `at`'s port: IPv6 and IPv4 together where the host has IPv6, else IPv4.
flowc_status listen_on(const HostPort& at, const std::string& address, int backlog, Socket* out_socket) {
  int error = 0;
  for (int family : {AF_INET6, AF_INET}) {
    Socket socket(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (socket.fd() < 0) {
      error = errno;
      continue;
    }
    // A model loaded again soon after binds the port while the last one's connections linger.
    int one = 1, zero = 0;
    setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage any{};
    socklen_t length = 0;
    if (family == AF_INET6) {
      setsockopt(socket.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&any);
      v6->sin6_family = AF_INET6;
      v6->sin6_addr = in6addr_any;
      v6->sin6_port = htons(uint16_t(at.port));
      length = sizeof *v6;
    } else {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&any);
      v4->sin_family = AF_INET;
      v4->sin_addr.s_addr = htonl(INADDR_ANY);
      v4->sin_port = htons(uint16_t(at.port));
      length = sizeof *v4;
    }
    if (bind(socket.fd(), reinterpret_cast<sockaddr*>(&any), length) == 0 && listen(socket.fd(), backlog) == 0) {
      *out_socket = std::move(socket);
      return nullptr;
    }
    error = errno;
    if (error == EADDRINUSE) break;  // IPv4 alone would find it taken too
  }
  return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                           "rank 0 cannot listen on port %d (of %s) for the other ranks: %s%s", at.port,
                           address.c_str(), std::strerror(error),
                           error == EADDRINUSE ? ": another process holds it; choose a free port" : "");
}

// A connection to rank 0 and what it has said so far.
struct Caller {
  Socket socket;
  std::string from;
  uint8_t hello[4 * kHelloWords] = {};
  size_t got = 0;
};

// Reads what `caller` has sent of its hello: false once it has closed the connection or proved
// to be no flowc rank, and is to be forgotten.
bool hear(Caller& caller, const std::string& address) {
  ssize_t n = recv(caller.socket.fd(), caller.hello + caller.got, sizeof caller.hello - caller.got, 0);
  if (n > 0) caller.got += size_t(n);
  bool closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  if (caller.got == sizeof caller.hello && word_at(caller.hello, 0) != kMagic) {
    FLOWC_LOG(FLOWC_LOG_WARN, "rank 0 ignored a connection from %s to %s that is not a flowc rank's",
              caller.from.c_str(), address.c_str());
    return false;
  }
  return !closed;
}

// Whether a rank that said hello still waits on `fd` for the answer: open, and quiet (a rank
// says nothing more until then). Closed, reset or talking, it is no rank to answer.
bool still_waiting(int fd) {
  uint8_t byte = 0;
  return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

const char* transfer_error(int error) { return error == kClosed ? "it closed the connection" : std::strerror(error); }

flowc_status serve_as_first(const HostPort& at, const std::string& address, int32_t size, bool ready,
                            Clock::time_point deadline, double timeout_s,
                            const std::function<flowc_status(void*)>& make, void* data, size_t bytes,
                            int32_t* out_unready) {
  Socket listener;
  // Room in the queue for every rank and strangers besides (the kernel caps it at somaxconn): a
  // caller the full queue drops tries again only a second later.
  FLOWC_RETURN_IF_ERROR(listen_on(at, address, 4096, &listener));
  std::vector<std::unique_ptr<Caller>> strays;  // connected, rank not yet said; the oldest first
  std::vector<std::unique_ptr<Caller>> ranks(static_cast<size_t>(size));  // [rank], while it waits
  int32_t joined = 1;
  int accept_error = 0;  // why accepting last failed for want of file descriptors or memory
  bool trimmed = false;
  for (;;) {
    // Once every rank has said hello, one last look at their connections before answering.
    bool last_look = joined == size;
    if (!last_look && ms_left(deadline) == 0) {
      std::vector<int32_t> missing;
      for (int32_t r = 1; r < size; ++r) {
        if (!ranks[size_t(r)]) missing.push_back(r);
      }
      return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                               "rank 0: rank%s %s did not reach %s within %g s (FLOWC_NCCL_TIMEOUT): not started, "
                               "failed before they could, or given another address%s%s%s",
                               missing.size() > 1 ? "s" : "", name_ranks(missing).c_str(), address.c_str(),
                               timeout_s, accept_error ? "; and rank 0 could not accept every connection: " : "",
                               accept_error ? std::strerror(accept_error) : "",
                               accept_error == EMFILE ? " (raise the limit on open files: ulimit -n)" : "");
    }
    std::vector<pollfd> watched;
    std::vector<int32_t> watched_ranks;
    for (int32_t r = 1; r < size; ++r) {
      if (!ranks[size_t(r)]) continue;
      watched.push_back({ranks[size_t(r)]->socket.fd(), POLLIN | POLLRDHUP, 0});
      watched_ranks.push_back(r);
    }
    if (!last_look) {
      watched.push_back({listener.fd(), POLLIN, 0});
      for (const auto& stray : strays) watched.push_back({stray->socket.fd(), POLLIN, 0});
    }
    int polled = poll(watched.data(), watched.size(), last_look ? 0 : ms_left(deadline));
    if (polled < 0 && errno != EINTR) {
      return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "rank 0 cannot wait for the other ranks at %s: poll: %s",
                               address.c_str(), std::strerror(errno));
    }
    if (polled == 0 && last_look) break;
    if (polled <= 0) continue;
    // A rank whose connection closed (it exited, or was killed) no longer counts: started again,
    // it connects again.
    for (size_t i = 0; i < watched_ranks.size(); ++i) {
      if (!watched[i].revents || still_waiting(watched[i].fd)) continue;
      int32_t r = watched_ranks[i];
      FLOWC_LOG(FLOWC_LOG_WARN, "rank 0: rank %d (at %s) left %s before NCCL's id was handed out; waiting for it to "
                "connect again", r, ranks[size_t(r)]->from.c_str(), address.c_str());
      ranks[size_t(r)].reset();
      --joined;
    }
    if (last_look) continue;

    for (size_t accepted = 0; accepted < kMaxStrays; ++accepted) {
      sockaddr_storage from{};
      socklen_t length = sizeof from;
      int fd = accept4(listener.fd(), reinterpret_cast<sockaddr*>(&from), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        auto caller = std::make_unique<Caller>();
        caller->socket = Socket(fd);
        caller->from = peer_name(reinterpret_cast<const sockaddr*>(&from), length);
        strays.push_back(std::move(caller));
        continue;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The caller stays queued, and the listener readable: pause rather than spin.
        if (!accept_error) {
          FLOWC_LOG(FLOWC_LOG_WARN, "rank 0 cannot accept a connection at %s: %s; trying again", address.c_str(),
                    std::strerror(errno));
        }
        accept_error = errno;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(kAcceptPauseMs, ms_left(deadline))));
        break;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // Otherwise that caller left before it was accepted (ECONNABORTED), or a signal came.
    }

    for (size_t i = 0; i < strays.size();) {
      Caller& caller = *strays[i];
      if (!hear(caller, address)) {
        // One that left before saying its rank (a rank that died, a port scan) is forgotten.
        strays.erase(strays.begin() + ptrdiff_t(i));
        continue;
      }
      if (caller.got < sizeof caller.hello) {
        ++i;
        continue;
      }
      auto rank = int32_t(word_at(caller.hello, 1));
      auto ranks_said = int32_t(word_at(caller.hello, 2));
      if (ranks_said != size || rank < 1 || rank >= size) {
        return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                 "rank 0 of %d ranks heard at %s from rank %d of %d (at %s): every rank needs the same "
                                 "WORLD_SIZE, and its own RANK below it",
                                 size, address.c_str(), rank, ranks_said, caller.from.c_str());
      }
      std::unique_ptr<Caller>& slot = ranks[size_t(rank)];
      if (slot && still_waiting(slot->socket.fd())) {
        return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                 "rank 0 heard at %s from two processes that say they are rank %d (at %s and %s): "
                                 "each process needs a RANK of its own",
                                 address.c_str(), rank, slot->from.c_str(), caller.from.c_str());
      }
      if (slot) {
        FLOWC_LOG(FLOWC_LOG_WARN, "rank 0: rank %d connected again to %s (at %s); its first connection closed", rank,
                  address.c_str(), caller.from.c_str());
      } else {
        ++joined;
      }
      slot = std::move(strays[i]);
      strays.erase(strays.begin() + ptrdiff_t(i));
    }
    // Callers that connect and say nothing are let go, the oldest first: they cannot take every
    // file descriptor, and a rank says its hello as soon as it connects.
    if (strays.size() > kMaxStrays) {
      if (!trimmed) {
        FLOWC_LOG(FLOWC_LOG_WARN, "rank 0 closes connections to %s that said nothing, keeping the newest %zu",
                  address.c_str(), kMaxStrays);
      }
      trimmed = true;
      strays.erase(strays.begin(), strays.end() - ptrdiff_t(kMaxStrays));
    }
  }
  strays.clear();
  listener = Socket();  // callers still queued are refused

  int32_t unready = ready ? -1 : 0;
  for (int32_t r = 1; r < size && unready < 0; ++r) {
    if (!word_at(ranks[size_t(r)]->hello, 3)) unready = r;
  }
  flowc_status made = nullptr;
  if (unready < 0) {
    made = make(data);
    if (made) unready = 0;
  }
  std::vector<uint8_t> answer(4 * kAnswerWords + bytes, 0);
  put_words({kMagic, uint32_t(unready), uint32_t(bytes)}, answer.data());
  if (unready < 0 && bytes) std::memcpy(answer.data() + 4 * kAnswerWords, data, bytes);
  for (int32_t r = 1; r < size; ++r) {
    int error = transfer(ranks[size_t(r)]->socket.fd(), true, answer.data(), answer.size(), deadline);
    if (error) {
      flowc_status_free(made);
      return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "rank 0 could not answer rank %d (at %s) on %s: %s", r,
                               ranks[size_t(r)]->from.c_str(), address.c_str(), transfer_error(error));
    }
  }
  if (unready >= 0) {
    *out_unready = unready;
    return made;
  }
  // An answer sent may still be lost to a rank that has just died: each rank acknowledges the
  // bytes, and none uses them before every rank has. Rank 0 failing here closes every
  // connection, so that the others fail now, not in NCCL's init after FLOWC_NCCL_TIMEOUT.
  for (int32_t r = 1; r < size; ++r) {
    uint8_t got_it = 0;
    int error = transfer(ranks[size_t(r)]->socket.fd(), false, &got_it, 1, deadline);
    if (!error && got_it != kGotIt) error = EPROTO;
    if (error) {
      return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                               "rank 0: rank %d (at %s) did not acknowledge NCCL's id from %s: %s%s; no rank starts "
                               "NCCL",
                               r, ranks[size_t(r)]->from.c_str(), address.c_str(), transfer_error(error),
                               error == kClosed     ? " (it exited? its own error says why)"
                               : error == ETIMEDOUT ? " (FLOWC_NCCL_TIMEOUT)"
                                                    : "");
    }
  }
  uint8_t go = kGo;
  for (int32_t r = 1; r < size; ++r) {
    int error = transfer(ranks[size_t(r)]->socket.fd(), true, &go, 1, deadline);
    if (error) {
      return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                               "rank 0 could not tell rank %d (at %s) on %s that every rank has NCCL's id: %s", r,
                               ranks[size_t(r)]->from.c_str(), address.c_str(), transfer_error(error));
    }
  }
  *out_unready = -1;
  return nullptr;
}

// Waits until the non-blocking connect on `fd` ends, or `until`: 0, or why it failed.
int finish_connect(int fd, Clock::time_point until) {
  for (;;) {
    pollfd connecting{fd, POLLOUT, 0};
    int polled = poll(&connecting, 1, ms_left(until));
    if (polled < 0 && errno == EINTR) continue;  // a signal: the connect goes on
    if (polled < 0) return errno;
    if (polled == 0) return ETIMEDOUT;
    int error = 0;
    socklen_t length = sizeof error;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 ? error : errno;
  }
}

// One round of attempts to connect to `at`: each of its addresses in turn, for at most
// kConnectTryMs each, so that one that drops every packet (a firewalled IPv6 address listed
// first, say) leaves time for the next. *out_error says why none answered.
bool try_connect(const HostPort& at, Clock::time_point deadline, Socket* out_socket, std::string* out_error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int resolved = getaddrinfo(at.host.c_str(), std::to_string(at.port).c_str(), &hints, &found);
  if (resolved != 0) {
    *out_error = "cannot resolve " + at.host + ": " + gai_strerror(resolved);
    return false;
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, freeaddrinfo);
  std::string errors;
  bool several = found->ai_next != nullptr;  // then each error names its address
  for (addrinfo* a = found; a; a = a->ai_next) {
    Socket socket(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    int error = socket.fd() < 0 ? errno : connect(socket.fd(), a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (error == EINPROGRESS || error == EINTR) {
      error = finish_connect(socket.fd(), std::min(deadline, Clock::now() + std::chrono::milliseconds(kConnectTryMs)));
    }
    if (error == 0) {
      *out_socket = std::move(socket);
      return true;
    }
    errors += std::string(errors.empty() ? "" : ", ") + std::strerror(error) +
              (several ? " (" + peer_name(a->ai_addr, a->ai_addrlen) + ")" : "");
  }
  *out_error = errors;
  return false;
}

flowc_status join_first(const HostPort& at, const std::string& address, int32_t rank, int32_t size, bool ready,
                        Clock::time_point deadline, double timeout_s, void* data, size_t bytes,
                        int32_t* out_unready) {
  Socket socket;
  std::string error = "no attempt";
  while (!try_connect(at, deadline, &socket, &error)) {
    if (ms_left(deadline) == 0) {
      return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                               "rank %d could not reach rank 0 at %s within %g s (FLOWC_NCCL_TIMEOUT): %s; is rank 0 "
                               "running, and is that its address?",
                               rank, address.c_str(), timeout_s, error.c_str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
  }
  uint8_t hello[4 * kHelloWords];
  put_words({kMagic, uint32_t(rank), uint32_t(size), ready ? 1u : 0u}, hello);
  std::vector<uint8_t> answer(4 * kAnswerWords + bytes);
  int failed = transfer(socket.fd(), true, hello, sizeof hello, deadline);
  if (!failed) failed = transfer(socket.fd(), false, answer.data(), answer.size(), deadline);
  if (failed == ETIMEDOUT) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: rank 0 at %s did not answer within %g s (FLOWC_NCCL_TIMEOUT): it waits for "
                             "every rank, and some have not come",
                             rank, address.c_str(), timeout_s);
  }
  if (failed) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: rank 0 at %s %s before answering: it gave up (its own error says why)", rank,
                             address.c_str(),
                             failed == kClosed ? "closed the connection" : std::strerror(failed));
  }
  if (word_at(answer.data(), 0) != kMagic || word_at(answer.data(), 2) != bytes) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: what answers at %s is not flowc's rank 0: another program holds that port?",
                             rank, address.c_str());
  }
  auto unready = int32_t(word_at(answer.data(), 1));
  if (unready >= 0) {
    *out_unready = unready;
    return nullptr;
  }
  // The bytes are kept only once rank 0 says that every rank has them.
  uint8_t got_it = kGotIt, go = 0;
  failed = transfer(socket.fd(), true, &got_it, 1, deadline);
  if (!failed) failed = transfer(socket.fd(), false, &go, 1, deadline);
  if (!failed && go != kGo) failed = EPROTO;
  if (failed == ETIMEDOUT) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: rank 0 at %s handed out NCCL's id, but did not say within %g s "
                             "(FLOWC_NCCL_TIMEOUT) that every rank has it",
                             rank, address.c_str(), timeout_s);
  }
  if (failed) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: rank 0 at %s %s after handing out NCCL's id: it gave up, as a rank did not "
                             "acknowledge it (rank 0's error names that rank)",
                             rank, address.c_str(),
                             failed == kClosed ? "closed the connection" : std::strerror(failed));
  }
  std::memcpy(data, answer.data() + 4 * kAnswerWords, bytes);
  *out_unready = -1;
  return nullptr;
}

}  // namespace

flowc_status rendezvous_over_tcp(const std::string& address, int32_t rank, int32_t size, bool ready, double timeout_s,
                                 const std::function<flowc_status(void* data)>& make, void* data, size_t bytes,
                                 int32_t* out_unready) {
  *out_unready = -1;
  HostPort at;
  FLOWC_RETURN_IF_ERROR(parse_host_port("the address where the ranks meet", address, &at));
  if (size < 1 || rank < 0 || rank >= size) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "rank %d of %d ranks", rank, size);
  }
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  if (rank > 0) return join_first(at, address, rank, size, ready, deadline, timeout_s, data, bytes, out_unready);
  if (size == 1) {
    flowc_status made = ready ? make(data) : nullptr;  // alone: nothing to listen for
    *out_unready = ready && !made ? -1 : 0;
    return made;
  }
  return serve_as_first(at, address, size, ready, deadline, timeout_s, make, data, bytes, out_unready);
}

}  // namespace flowc
