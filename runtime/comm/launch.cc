#include "runtime/comm/launch.h"

#include <climits>
#include <cstdlib>
#include <cstring>

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

flowc_status nccl_bootstrap_address(const Getenv& getenv, std::string* out_address) {
  if (const char* comm_id = launch_variable(getenv, "NCCL_COMM_ID")) {
    *out_address = comm_id;
    return nullptr;
  }
  static const char* const kWhatToSet =
      "set NCCL_COMM_ID=host:port (rank 0's host and a free port, the same on every rank), or MASTER_ADDR and "
      "MASTER_PORT as torchrun does (rank 0 then listens on MASTER_PORT + 1)";
  const char* addr = launch_variable(getenv, "MASTER_ADDR");
  const char* port = launch_variable(getenv, "MASTER_PORT");
  if (!addr || !port) {
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "NCCL's bootstrap needs an address that every rank can reach, and %s is not set: %s",
                             addr ? "MASTER_PORT" : "MASTER_ADDR", kWhatToSet);
  }
  int32_t number = 0;
  flowc_status bad = parse_count("MASTER_PORT", port, 1, &number);
  if (bad || number >= 65535) {
    flowc_status_free(bad);
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "MASTER_PORT is '%s': NCCL's bootstrap listens on the port after it, so it must be 1 to "
                             "65534; or %s",
                             port, kWhatToSet);
  }
  // NCCL reads an IPv6 address in brackets: [fe80::1]:29501.
  bool bare_ipv6 = std::strchr(addr, ':') && addr[0] != '[';
  *out_address = (bare_ipv6 ? "[" + std::string(addr) + "]" : std::string(addr)) + ":" + std::to_string(number + 1);
  return nullptr;
}

}  // namespace flowc
