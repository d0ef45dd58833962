#ifndef FLOWC_TESTS_RUNTIME_FREE_PORT_H_
#define FLOWC_TESTS_RUNTIME_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

// A TCP port free on this host now (the kernel's pick), for a test's rendezvous over loopback.
inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  CHECK(bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
  CHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

#endif  // FLOWC_TESTS_RUNTIME_FREE_PORT_H_
