// Runs the dsv4 binary the way a user's shell does and captures what it prints.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// stderr joins stdout unless `stdout_only`.
inline Result run_dsv4(const std::string& arguments, bool stdout_only = false) {
  const std::string command =
      std::string(DSV4_BINARY) + " " + arguments + (stdout_only ? " 2>/dev/null" : " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}
