// The launcher's environment and the ranks' meeting over TCP (runtime/comm/launch): host code, so
// tested on every machine. The launch, NCCL's bootstrap and FLOWC_NCCL_TIMEOUT read from fake
// environments; ranks as threads (and once as processes) meeting over loopback, then each way
// that meeting fails, every one within its deadline and with an error that names the rank, the
// address or the variable: ranks that leave and come back, strangers that hold connections,
// rank 0 out of file descriptors, a first address that drops every packet.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "free_port.h"
#include "status_check.h"
#include "runtime/comm/launch.h"

// "two-addresses.test" resolves to 127.0.0.1 twice: first at black_hole_port (a port that drops
// every packet), then at the port asked for. This getaddrinfo, ahead of the C library's, is what
// launch.cc calls; every other name goes to the C library's.
namespace {
constexpr const char* kTwoAddresses = "two-addresses.test";
int black_hole_port = 0;
}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** out) {
  using Resolve = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static auto resolve = reinterpret_cast<Resolve>(dlsym(RTLD_NEXT, "getaddrinfo"));
  if (!node || std::strcmp(node, kTwoAddresses) != 0) return resolve(node, service, hints, out);
  addrinfo numeric = hints ? *hints : addrinfo{};
  numeric.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* first = nullptr;
  int error = resolve("127.0.0.1", std::to_string(black_hole_port).c_str(), &numeric, &first);
  if (error) return error;
  addrinfo* last = first;
  while (last->ai_next) last = last->ai_next;
  error = resolve("127.0.0.1", service, &numeric, &last->ai_next);  // freeaddrinfo frees node by node
  if (error) freeaddrinfo(first);
  if (!error) *out = first;
  return error;
}

namespace {

using Table = std::map<std::string, std::string>;

std::function<const char*(const char*)> getenv_of(const Table& table) {
  return [&table](const char* name) -> const char* {
    auto found = table.find(name);
    return found == table.end() ? nullptr : found->second.c_str();
  };
}

flowc::LaunchEnv launch(const Table& table) {
  flowc::LaunchEnv env;
  flowc_status status = flowc::read_launch_env(getenv_of(table), &env);
  CHECK(!status, "%s", flowc_status_get_message(status));
  return env;
}

void check_launch(const Table& table, int32_t rank, int32_t size, int32_t local_rank, int32_t local_size,
                  const char* launcher) {
  flowc::LaunchEnv env = launch(table);
  CHECK(env.rank == rank && env.world_size == size && env.local_rank == local_rank && env.local_size == local_size &&
            std::strcmp(env.launcher, launcher) == 0,
        "got rank %d of %d, local %d of %d, from %s", env.rank, env.world_size, env.local_rank, env.local_size,
        env.launcher);
}

void launch_fails(const Table& table, flowc_status_code code, const std::string& text) {
  flowc::LaunchEnv env;
  fails(flowc::read_launch_env(getenv_of(table), &env), code, text);
}

void check_launch_env() {
  check_launch({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}}, 3, 8, 1, 2,
               "torchrun");
  check_launch({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
               1, 4, 1, 2, "Open MPI");
  check_launch({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"}, {"MPI_LOCALNRANKS", "1"}}, 2, 3, 0, 1,
               "PMI");
  // torchrun's variables first, then Open MPI's, then PMI's; set to nothing is unset.
  check_launch({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}}, 1,
               2, 1, 2, "torchrun");
  check_launch({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"PMI_RANK", "0"}, {"PMI_SIZE", "1"}},
               3, 4, 3, 4, "Open MPI");
  check_launch({{"RANK", ""}, {"WORLD_SIZE", ""}, {"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}, 1, 2, 1, 2, "PMI");
  // Without the local pair, every rank is on this host.
  check_launch({{"PMI_RANK", "2"}, {"PMI_SIZE", "4"}}, 2, 4, 2, 4, "PMI");

  for (const char* bad : {"-1", "+1", " 1", "1 ", "0x1", "1.0", "one", "2147483648", "99999999999999999999"}) {
    launch_fails({{"RANK", bad}, {"WORLD_SIZE", "4"}}, FLOWC_STATUS_INVALID_ARGUMENT,
                 std::string("RANK is '") + bad + "', not a whole number of at least 0");
  }
  launch_fails({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, FLOWC_STATUS_INVALID_ARGUMENT,
               "WORLD_SIZE is '0', not a whole number of at least 1");
  launch_fails({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "x"},
                {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "OMPI_COMM_WORLD_LOCAL_RANK is 'x', not a whole number");
  // A malformed launch is an error even where another launcher's variables would do.
  launch_fails({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"PMI_RANK", "0"}, {"PMI_SIZE", "2"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "RANK is 'x'");
  launch_fails({{"RANK", "4"}, {"WORLD_SIZE", "4"}}, FLOWC_STATUS_INVALID_ARGUMENT,
               "RANK is 4, not below WORLD_SIZE = 4");
  launch_fails({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "2"}, {"MPI_LOCALNRANKS", "2"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "MPI_LOCALRANKID is 2, not below MPI_LOCALNRANKS = 2");
  launch_fails({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "8"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "LOCAL_WORLD_SIZE is 8, more than WORLD_SIZE = 4");
  launch_fails({{"RANK", "0"}}, FLOWC_STATUS_INVALID_ARGUMENT, "RANK is '0' but WORLD_SIZE is not set");
  launch_fails({{"WORLD_SIZE", "2"}}, FLOWC_STATUS_INVALID_ARGUMENT, "WORLD_SIZE is '2' but RANK is not set");
  launch_fails({{"PMI_RANK", "0"}, {"PMI_SIZE", "1"}, {"MPI_LOCALRANKID", "0"}}, FLOWC_STATUS_INVALID_ARGUMENT,
               "MPI_LOCALRANKID is '0' but MPI_LOCALNRANKS is not set");
  launch_fails({{"MASTER_ADDR", "node0"}}, FLOWC_STATUS_FAILED_PRECONDITION,
               "NCCL needs one process per GPU started by a launcher: mpirun -np N, or torchrun");
  std::printf("launch env: ok\n");
}

flowc::NcclBootstrap bootstrap(const Table& table) {
  flowc::NcclBootstrap out;
  flowc_status status = flowc::read_nccl_bootstrap(getenv_of(table), &out);
  CHECK(!status, "%s", flowc_status_get_message(status));
  return out;
}

void check_bootstrap(const Table& table, const std::string& exchange, const std::string& comm_id) {
  flowc::NcclBootstrap got = bootstrap(table);
  CHECK(got.exchange == exchange && got.comm_id == comm_id, "exchange '%s', NCCL_COMM_ID '%s'", got.exchange.c_str(),
        got.comm_id.c_str());
}

void bootstrap_fails(const Table& table, flowc_status_code code, const std::string& text) {
  flowc::NcclBootstrap out;
  fails(flowc::read_nccl_bootstrap(getenv_of(table), &out), code, text);
}

void check_bootstrap_and_timeout() {
  // torchrun's store has MASTER_PORT; rank 0 hands out NCCL's id on the next one. NCCL_COMM_ID is
  // where NCCL's own root listens, and alone it is the whole bootstrap.
  check_bootstrap({{"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}}, "node0:29501", "");
  check_bootstrap({{"NCCL_COMM_ID", "10.1.2.3:4000"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}},
                  "node0:29501", "10.1.2.3:4000");
  check_bootstrap({{"NCCL_COMM_ID", "[fe80::2]:4000"}, {"MASTER_ADDR", "node0"}}, "", "[fe80::2]:4000");
  check_bootstrap({{"NCCL_COMM_ID", ""}, {"MASTER_ADDR", "fe80::1"}, {"MASTER_PORT", "1"}}, "[fe80::1]:2", "");
  check_bootstrap({{"MASTER_ADDR", "[::1]"}, {"MASTER_PORT", "65534"}}, "[::1]:65535", "");
  for (const char* bad : {"65535", "70000", "0", "http", "-1"}) {
    bootstrap_fails({{"MASTER_ADDR", "node0"}, {"MASTER_PORT", bad}}, FLOWC_STATUS_FAILED_PRECONDITION,
                    std::string("MASTER_PORT is '") + bad + "': rank 0 listens on the port after it");
  }
  bootstrap_fails({{"MASTER_ADDR", "node0"}}, FLOWC_STATUS_FAILED_PRECONDITION, "MASTER_PORT is not set");
  bootstrap_fails({{"MASTER_PORT", "29500"}}, FLOWC_STATUS_FAILED_PRECONDITION, "MASTER_ADDR is not set");
  bootstrap_fails({}, FLOWC_STATUS_FAILED_PRECONDITION,
                  "MASTER_ADDR is not set: set MASTER_ADDR and MASTER_PORT on every rank as torchrun does");
  for (const char* bad : {"node0", "node0:", ":4000", "fe80::1:4000", "node0:0", "node0:65536"}) {
    bootstrap_fails({{"NCCL_COMM_ID", bad}}, FLOWC_STATUS_INVALID_ARGUMENT,
                    std::string("NCCL_COMM_ID is '") + bad + "', not host:port");
  }
  bootstrap_fails({{"NCCL_COMM_ID", "node0:29501"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}},
                  FLOWC_STATUS_FAILED_PRECONDITION,
                  "NCCL_COMM_ID is 'node0:29501', but port 29501 is MASTER_PORT + 1, where rank 0 hands out NCCL's id");
  bootstrap_fails({{"NCCL_COMM_ID", "node0:29500"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}},
                  FLOWC_STATUS_FAILED_PRECONDITION, "port 29500 is MASTER_PORT, torchrun's store");

  int32_t seconds = 0;
  CHECK(!flowc::read_nccl_timeout(getenv_of({}), &seconds) && seconds == 600, "%d", seconds);
  CHECK(!flowc::read_nccl_timeout(getenv_of({{"FLOWC_NCCL_TIMEOUT", "30"}}), &seconds) && seconds == 30);
  for (const char* bad : {"0", "-1", "1.5", "30s", "abc"}) {
    Table table{{"FLOWC_NCCL_TIMEOUT", bad}};
    fails(flowc::read_nccl_timeout(getenv_of(table), &seconds), FLOWC_STATUS_INVALID_ARGUMENT,
          std::string("FLOWC_NCCL_TIMEOUT is '") + bad + "', not a whole number of seconds of at least 1");
  }
  std::printf("bootstrap and timeout: ok\n");
}

std::string loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

constexpr size_t kBlob = 128;  // an ncclUniqueId's size

// What rank 0 hands out: byte i is i * 7 + 1.
flowc_status make_blob(void* data) {
  for (size_t i = 0; i < kBlob; ++i) static_cast<uint8_t*>(data)[i] = uint8_t(i * 7 + 1);
  return nullptr;
}

bool is_blob(const std::vector<uint8_t>& data) {
  std::vector<uint8_t> expected(kBlob);
  make_blob(expected.data());
  return data == expected;
}

// One rank's part in a meeting and what it got.
struct Part {
  int32_t rank = 0, size = 1;
  bool ready = true;
  double timeout_s = 5;
  double start_after_s = 0;  // rank 0 late, say
  std::function<flowc_status(void*)> make = make_blob;
  std::unique_ptr<flowc_status_s, void (*)(flowc_status)> status{nullptr, flowc_status_free};
  int32_t unready = -2;
  std::vector<uint8_t> data = std::vector<uint8_t>(kBlob, 0);
  double took_s = 0;
};

void take_part(const std::string& address, Part* part) {
  std::this_thread::sleep_for(std::chrono::duration<double>(part->start_after_s));
  auto start = std::chrono::steady_clock::now();
  part->status.reset(flowc::rendezvous_over_tcp(address, part->rank, part->size, part->ready, part->timeout_s,
                                                part->make, part->data.data(), kBlob, &part->unready));
  part->took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// `part` failed with `code` and a message that holds `text`; its status is freed.
std::string failed(Part& part, flowc_status_code code, const std::string& text) {
  return fails(part.status.release(), code, text);
}

// Every part at once, each on a thread of its own.
void meet(const std::string& address, std::vector<Part>* parts) {
  std::vector<std::thread> threads;
  for (Part& part : *parts) threads.emplace_back(take_part, address, &part);
  for (std::thread& thread : threads) thread.join();
}

std::vector<Part> ranks_of(int32_t size) {
  std::vector<Part> parts(static_cast<size_t>(size));
  for (int32_t r = 0; r < size; ++r) {
    parts[size_t(r)].rank = r;
    parts[size_t(r)].size = size;
  }
  return parts;
}

void check_meetings() {
  // Four ranks: every one gets rank 0's bytes, and none is unready.
  std::vector<Part> parts = ranks_of(4);
  meet(loopback(free_port()), &parts);
  for (const Part& part : parts) {
    CHECK(!part.status, "rank %d: %s", part.rank, flowc_status_get_message(part.status.get()));
    CHECK(part.unready == -1 && is_blob(part.data), "rank %d: unready %d", part.rank, part.unready);
  }

  // Rank 0 late: the others retry until it listens.
  parts = ranks_of(2);
  parts[0].start_after_s = 0.4;
  meet(loopback(free_port()), &parts);
  CHECK(!parts[0].status && !parts[1].status && parts[1].unready == -1 && is_blob(parts[1].data));

  // A rank that is not ready: every rank hears which (the lowest), and rank 0 makes nothing.
  for (int32_t unready : {2, 0}) {
    parts = ranks_of(4);
    parts[size_t(unready)].ready = false;
    parts[3].ready = false;
    bool made = false;
    parts[0].make = [&made](void* data) {
      made = true;
      return make_blob(data);
    };
    meet(loopback(free_port()), &parts);
    for (const Part& part : parts) {
      CHECK(!part.status, "rank %d: %s", part.rank, flowc_status_get_message(part.status.get()));
      CHECK(part.unready == unready && !is_blob(part.data), "rank %d: unready %d", part.rank, part.unready);
    }
    CHECK(!made);
  }

  // Rank 0's bytes cannot be made: it returns why, and the others hear that rank 0 is not ready.
  parts = ranks_of(3);
  parts[0].make = [](void*) { return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "no id today"); };
  meet(loopback(free_port()), &parts);
  failed(parts[0], FLOWC_STATUS_UNAVAILABLE, "no id today");
  CHECK(!parts[1].status && parts[1].unready == 0 && !parts[2].status && parts[2].unready == 0);

  // One rank alone listens for nobody: a port in use does not matter.
  parts = ranks_of(1);
  meet("127.0.0.1:1", &parts);
  CHECK(!parts[0].status && parts[0].unready == -1 && is_blob(parts[0].data));

  // An IPv6 address, where this host has IPv6 loopback.
  int v6 = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 any6{};
  any6.sin6_family = AF_INET6;
  any6.sin6_addr = in6addr_loopback;
  bool have_v6 = v6 >= 0 && bind(v6, reinterpret_cast<sockaddr*>(&any6), sizeof any6) == 0;
  if (v6 >= 0) close(v6);
  if (have_v6) {
    parts = ranks_of(2);
    meet("[::1]:" + std::to_string(free_port()), &parts);
    CHECK(!parts[0].status && !parts[1].status && is_blob(parts[1].data), "%s",
          flowc_status_get_message(parts[1].status.get()));
  }
  std::printf("meetings: ok (4 ranks, rank 0 late, ranks not ready, rank 0 failing, one rank%s)\n",
              have_v6 ? ", IPv6" : "");
}

// Rank 1 in a child process, rank 0 here: the bytes cross processes.
void check_processes() {
  std::string address = loopback(free_port());
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    Part part;
    part.rank = 1;
    part.size = 2;
    take_part(address, &part);
    _exit(!part.status && part.unready == -1 && is_blob(part.data) ? 0 : 1);
  }
  Part part;
  part.size = 2;
  take_part(address, &part);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(!part.status, "%s", flowc_status_get_message(part.status.get()));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank 1's process failed (status %d)", status);
  std::printf("processes: ok\n");
}

// A listening socket on `port` that accepts and, after `answer` bytes of junk (none: silence),
// keeps the connection open until the caller stops it.
struct Impostor {
  int listener = -1, port = 0;
  std::thread thread;

  explicit Impostor(size_t answer) : port(free_port()) {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(uint16_t(port));
    CHECK(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    CHECK(listen(listener, 4) == 0);
    thread = std::thread([this, answer] {
      int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      std::vector<uint8_t> junk(answer, 0x5a);
      if (answer) CHECK(send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) == ssize_t(junk.size()));
      char byte;
      while (recv(fd, &byte, 1, 0) > 0) {
      }
      close(fd);
    });
  }
  ~Impostor() {
    shutdown(listener, SHUT_RDWR);
    thread.join();
    close(listener);
  }
};

// A raw connection to a rank 0 listening on `port` on loopback, once it listens; a read from it
// gives up after 5 s.
int connect_raw(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(uint16_t(port));
  for (int tries = 0;; ++tries) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    timeval patience{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
    close(fd);
    CHECK(tries < 100, "rank 0 never listened on %d", port);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A raw connection that says `bytes` of junk to a rank 0 listening on `port`, then waits for it to close.
void say_junk(int port, size_t bytes) {
  int fd = connect_raw(port);
  std::vector<uint8_t> junk(bytes, 0xa5);
  CHECK(send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) == ssize_t(junk.size()));
  char byte;
  while (recv(fd, &byte, 1, 0) > 0) {
  }
  close(fd);
}

// What a ready rank says first, as launch.cc writes it: "flwc", rank, size, ready, as 32-bit
// words in network order.
void say_hello(int fd, int32_t rank, int32_t size) {
  uint32_t words[4] = {htonl(0x666c7763), htonl(uint32_t(rank)), htonl(uint32_t(size)), htonl(1)};
  CHECK(send(fd, words, sizeof words, MSG_NOSIGNAL) == ssize_t(sizeof words));
}

// Rank 0's answer that carries its bytes (three words, then kBlob bytes), read off `fd`.
void read_answer(int fd) {
  uint8_t answer[12 + kBlob];
  for (size_t got = 0; got < sizeof answer;) {
    ssize_t n = recv(fd, answer + got, sizeof answer - got, 0);
    CHECK(n > 0, "rank 0 closed the connection, or did not answer within 5 s");
    got += size_t(n);
  }
}

// Whether rank 0 closes `fd` within `ms` milliseconds.
bool closed_within(int fd, int ms) {
  pollfd watched{fd, POLLIN, 0};
  if (poll(&watched, 1, ms) <= 0) return false;
  char byte;
  return recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
}

// A rank that leaves: one that said hello and left no longer counts, and may connect again; one
// that leaves (or goes silent) after the answer, without acknowledging it, fails every rank at
// once, and rank 0 names it.
void check_leaving() {
  int port = free_port();
  std::vector<Part> parts = ranks_of(3);
  std::thread first(take_part, loopback(port), &parts[0]);
  int gone = connect_raw(port);
  say_hello(gone, 1, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // heard by rank 0
  close(gone);
  std::thread last(take_part, loopback(port), &parts[2]);
  take_part(loopback(port), &parts[1]);  // rank 1 started again
  first.join();
  last.join();
  for (const Part& part : parts) {
    CHECK(!part.status, "rank %d: %s", part.rank, flowc_status_get_message(part.status.get()));
    CHECK(part.unready == -1 && is_blob(part.data), "rank %d: unready %d", part.rank, part.unready);
  }

  for (bool silent : {false, true}) {
    port = free_port();
    parts = ranks_of(3);
    parts.pop_back();
    if (silent) parts[0].timeout_s = 0.5;
    std::thread leaver([port, silent] {
      int fd = connect_raw(port);
      say_hello(fd, 2, 3);
      read_answer(fd);
      if (silent) CHECK(closed_within(fd, 3000), "rank 0 did not give up on a rank that said nothing");
      close(fd);
    });
    meet(loopback(port), &parts);
    leaver.join();
    failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
           "rank 0: rank 2 (at 127.0.0.1) did not acknowledge NCCL's id from " + loopback(port) + ": " +
               (silent ? "Connection timed out (FLOWC_NCCL_TIMEOUT)"
                       : "it closed the connection (it exited? its own error says why)") +
               "; no rank starts NCCL");
    failed(parts[1], FLOWC_STATUS_UNAVAILABLE,
           "rank 1: rank 0 at " + loopback(port) + " closed the connection after handing out NCCL's id: it gave up, "
           "as a rank did not acknowledge it (rank 0's error names that rank)");
    CHECK(parts[1].took_s < 2, "rank 1 took %g s", parts[1].took_s);
  }
  std::printf("leaving: ok (said hello and left, then connected again; left or silent after the answer)\n");
}

// Callers that connect and say nothing: rank 0 keeps the newest 64, closing the oldest, and the
// ranks still meet.
void check_strays() {
  int port = free_port();
  std::vector<Part> parts = ranks_of(2);
  std::thread first(take_part, loopback(port), &parts[0]);
  std::vector<int> strays;
  for (int i = 0; i < 70; ++i) strays.push_back(connect_raw(port));
  for (size_t i = 0; i < 6; ++i) CHECK(closed_within(strays[i], 3000), "stray %zu is still open", i);
  for (size_t i = 6; i < strays.size(); ++i) CHECK(!closed_within(strays[i], 0), "stray %zu was closed", i);
  take_part(loopback(port), &parts[1]);
  first.join();
  CHECK(!parts[0].status && !parts[1].status && is_blob(parts[1].data), "%s",
        flowc_status_get_message(parts[0].status.get()));
  for (int fd : strays) close(fd);
  std::printf("strays: ok (70 silent connections, the oldest 6 closed)\n");
}

// A listener whose queue is full: a connection to it gets no answer at all, as from a firewall
// that drops every packet.
struct BlackHole {
  int listener = -1, port = 0;
  std::vector<int> queued;

  BlackHole() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    CHECK(bind(listener, reinterpret_cast<sockaddr*>(&address), length) == 0);
    CHECK(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0 && listen(listener, 0) == 0);
    port = ntohs(address.sin_port);
    for (int tries = 0; tries < 8; ++tries) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      connect(fd, reinterpret_cast<sockaddr*>(&address), length);
      queued.push_back(fd);
      pollfd connecting{fd, POLLOUT, 0};
      if (poll(&connecting, 1, 100) == 0) return;  // unanswered: the queue is full
    }
    CHECK(false, "the listen queue of port %d never filled", port);
  }
  ~BlackHole() {
    for (int fd : queued) close(fd);
    close(listener);
  }
};

// Rank 0's first address drops every packet: the rank tries the next after 1 s, not at its
// deadline; without rank 0, its error names what each address did.
void check_black_hole() {
  BlackHole hole;
  black_hole_port = hole.port;
  std::vector<Part> parts = ranks_of(2);
  std::vector<Part> alone = ranks_of(2);
  alone.erase(alone.begin());
  alone[0].timeout_s = 1.1;
  std::string nobody = std::string(kTwoAddresses) + ":" + std::to_string(free_port());
  std::thread lonely(meet, nobody, &alone);
  meet(std::string(kTwoAddresses) + ":" + std::to_string(free_port()), &parts);
  lonely.join();
  CHECK(!parts[0].status && !parts[1].status && is_blob(parts[1].data), "%s",
        flowc_status_get_message(parts[1].status.get()));
  CHECK(parts[1].took_s < 3, "rank 1 took %g s", parts[1].took_s);
  failed(alone[0], FLOWC_STATUS_UNAVAILABLE,
         "rank 1 could not reach rank 0 at " + nobody + " within 1.1 s (FLOWC_NCCL_TIMEOUT): Connection timed out "
         "(127.0.0.1), Connection refused (127.0.0.1); is rank 0 running");
  std::printf("black hole: ok (the next address after 1 s)\n");
}

// Rank 0 out of file descriptors, in a process of its own with room for two ranks of three: it
// pauses between attempts to accept rather than spin, and says why the third never got in.
void check_out_of_descriptors() {
  std::string address = loopback(free_port());
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = 6;  // stdin, stdout, stderr, the listener, two ranks
    setrlimit(RLIMIT_NOFILE, &limit);
    Part part;
    part.size = 4;
    part.timeout_s = 0.5;
    take_part(address, &part);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    double cpu_s = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                   1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    std::string message = part.status ? flowc_status_get_message(part.status.get()) : "it succeeded";
    bool named = message.find("did not reach " + address + " within 0.5 s") != std::string::npos &&
                 message.find("; and rank 0 could not accept every connection: Too many open files (raise the limit "
                              "on open files: ulimit -n)") != std::string::npos;
    if (!named || cpu_s > 0.5 * part.took_s) {
      std::fprintf(stderr, "rank 0 out of file descriptors: %s; %g s of CPU in %g s\n", message.c_str(), cpu_s,
                   part.took_s);
      _exit(1);
    }
    _exit(0);
  }
  std::vector<Part> parts = ranks_of(4);
  parts.erase(parts.begin());
  meet(address, &parts);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank 0's process failed (status %d)", status);
  for (Part& part : parts) {
    CHECK(part.took_s < 3, "rank %d took %g s", part.rank, part.took_s);
    failed(part, FLOWC_STATUS_UNAVAILABLE, "closed the connection before answering: it gave up");
  }
  std::printf("out of file descriptors: ok\n");
}

void check_failures() {
  // No rank 0 before the deadline: the rank says where it looked, for how long, and why it failed.
  int port = free_port();
  std::vector<Part> parts = ranks_of(2);
  parts.erase(parts.begin());
  parts[0].timeout_s = 0.3;
  meet(loopback(port), &parts);
  failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
        "rank 1 could not reach rank 0 at " + loopback(port) +
            " within 0.3 s (FLOWC_NCCL_TIMEOUT): Connection refused; is rank 0 running, and is that its address?");
  CHECK(parts[0].took_s < 2, "%g s", parts[0].took_s);
  parts = ranks_of(2);
  parts.erase(parts.begin());
  parts[0].timeout_s = 0.3;
  meet("no-such-host.invalid:29501", &parts);
  failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
        "rank 1 could not reach rank 0 at no-such-host.invalid:29501 within 0.3 s (FLOWC_NCCL_TIMEOUT): cannot "
        "resolve no-such-host.invalid");

  // A rank that never comes: rank 0 names it, and the rank that came hears that rank 0 gave up.
  port = free_port();
  parts = ranks_of(3);
  parts.pop_back();
  parts[0].timeout_s = 0.5;
  meet(loopback(port), &parts);
  failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
        "rank 0: rank 2 did not reach " + loopback(port) + " within 0.5 s (FLOWC_NCCL_TIMEOUT)");
  failed(parts[1], FLOWC_STATUS_UNAVAILABLE,
        "rank 1: rank 0 at " + loopback(port) + " closed the connection before answering: it gave up");
  CHECK(parts[0].took_s < 2 && parts[1].took_s < 2, "%g s, %g s", parts[0].took_s, parts[1].took_s);
  parts = ranks_of(12);
  parts.resize(2);
  parts[0].timeout_s = 0.2;
  meet(loopback(free_port()), &parts);
  failed(parts[0], FLOWC_STATUS_UNAVAILABLE, "rank 0: ranks 2, 3, 4, 5, 6, 7, 8, 9 and 2 more did not reach");

  // Something at the port that is not rank 0: silent, or answering junk.
  {
    Impostor silent(0);
    parts = ranks_of(2);
    parts.erase(parts.begin());
    parts[0].timeout_s = 0.3;
    meet(loopback(silent.port), &parts);
    failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
          "rank 1: rank 0 at " + loopback(silent.port) + " did not answer within 0.3 s (FLOWC_NCCL_TIMEOUT)");
  }
  {
    Impostor talker(12 + kBlob);
    parts = ranks_of(2);
    parts.erase(parts.begin());
    meet(loopback(talker.port), &parts);
    failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
          "rank 1: what answers at " + loopback(talker.port) + " is not flowc's rank 0");
  }

  // Rank 0's port taken.
  {
    Impostor holder(0);
    parts = ranks_of(2);
    parts.pop_back();
    meet(loopback(holder.port), &parts);
    failed(parts[0], FLOWC_STATUS_UNAVAILABLE,
          "rank 0 cannot listen on port " + std::to_string(holder.port) + " (of " + loopback(holder.port) +
              ") for the other ranks: Address already in use: another process holds it");
  }

  // Two processes that say they are rank 1, and one started with another WORLD_SIZE.
  port = free_port();
  parts = ranks_of(3);
  parts[2].rank = 1;
  meet(loopback(port), &parts);
  failed(parts[0], FLOWC_STATUS_FAILED_PRECONDITION,
        "rank 0 heard at " + loopback(port) + " from two processes that say they are rank 1 (at 127.0.0.1 and "
        "127.0.0.1): each process needs a RANK of its own");
  failed(parts[1], FLOWC_STATUS_UNAVAILABLE, "closed the connection before answering");
  failed(parts[2], FLOWC_STATUS_UNAVAILABLE, "closed the connection before answering");
  port = free_port();
  parts = ranks_of(2);
  parts[1].size = 3;
  meet(loopback(port), &parts);
  failed(parts[0], FLOWC_STATUS_FAILED_PRECONDITION,
        "rank 0 of 2 ranks heard at " + loopback(port) + " from rank 1 of 3 (at 127.0.0.1): every rank needs the "
        "same WORLD_SIZE");

  // A stranger that reaches rank 0's port is ignored; the ranks still meet.
  port = free_port();
  parts = ranks_of(2);
  parts[1].start_after_s = 0.3;
  std::thread stranger(say_junk, port, 16);
  meet(loopback(port), &parts);
  stranger.join();
  CHECK(!parts[0].status && !parts[1].status && is_blob(parts[1].data), "%s",
        flowc_status_get_message(parts[0].status.get()));

  // Addresses that are not host:port.
  for (const char* bad : {"node0", "node0:", ":29501", "node0:0", "node0:65536", "node0:29x", "fe80::1:29501",
                          "[fe80::1", "[fe80::1]29501", ""}) {
    Part part;
    part.rank = 1;
    part.size = 2;
    take_part(bad, &part);
    failed(part, FLOWC_STATUS_INVALID_ARGUMENT,
          std::string("the address where the ranks meet is '") + bad + "', not host:port");
  }
  std::printf("failures: ok (no rank 0, a rank missing, impostors, a taken port, a duplicate rank, another size, "
              "a stranger, malformed addresses)\n");
}

}  // namespace

int main() {
  check_launch_env();
  check_bootstrap_and_timeout();
  check_processes();  // first: fork before any thread of this test
  check_out_of_descriptors();
  check_meetings();
  check_failures();
  check_leaving();
  check_strays();
  check_black_hole();
  std::printf("launch: ok\n");
  return 0;
}
