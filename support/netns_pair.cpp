#include "netns_pair.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace agp::support {
namespace {

int run(const std::string& command) {
  const int rc = std::system((command + " >/dev/null 2>&1").c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

Status run_all(const std::vector<std::string>& commands) {
  for (const auto& c : commands) {
    if (run(c) != 0) return make_error(ErrorCode::kIoError, "failed: " + c);
  }
  return {};
}

Status enter(const std::string& ns) {
  const std::string path = "/var/run/netns/" + ns;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kIoError, "cannot open " + path);
  const int rc = ::setns(fd, CLONE_NEWNET);
  ::close(fd);
  if (rc != 0) return make_error(ErrorCode::kIoError, "setns into " + ns + " failed");
  return {};
}

}  // namespace

bool netns_available() {
  if (::geteuid() != 0) return false;
  const std::string probe = "agpprobe" + std::to_string(::getpid());
  if (run("ip netns add " + probe) != 0) return false;
  run("ip netns del " + probe);
  return true;
}

Result<NetnsPair> NetnsPair::create(const std::string& tag, std::optional<double> rate_gbit,
                                    const std::string& burst) {
  NetnsPair p;
  const std::string id = std::to_string(::getpid() % 100000);
  p.ns_a_ = std::string("agp") + tag + id + "a";
  p.ns_b_ = std::string("agp") + tag + id + "b";
  p.dev_a_ =
      std::string("v") + tag.substr(0, 3) + id + "a";  // interface names stay under 16 characters
  p.dev_b_ = std::string("v") + tag.substr(0, 3) + id + "b";
  const int subnet = 1 + static_cast<int>(::getpid() % 250);
  p.address_a_ = std::string("10.213.") + std::to_string(subnet) + ".1";
  p.address_b_ = std::string("10.213.") + std::to_string(subnet) + ".2";
  // Leftovers of a crashed earlier run with the same names.
  run("ip netns del " + p.ns_a_);
  run("ip netns del " + p.ns_b_);
  std::vector<std::string> cmds = {
      "ip netns add " + p.ns_a_,
      "ip netns add " + p.ns_b_,
      "ip link add " + p.dev_a_ + " netns " + p.ns_a_ + " type veth peer name " + p.dev_b_ +
          " netns " + p.ns_b_,
      "ip -n " + p.ns_a_ + " addr add " + p.address_a_ + "/24 dev " + p.dev_a_,
      "ip -n " + p.ns_b_ + " addr add " + p.address_b_ + "/24 dev " + p.dev_b_,
      "ip -n " + p.ns_a_ + " link set lo up",
      "ip -n " + p.ns_b_ + " link set lo up",
      "ip -n " + p.ns_a_ + " link set " + p.dev_a_ + " up",
      "ip -n " + p.ns_b_ + " link set " + p.dev_b_ + " up",
  };
  if (rate_gbit) {
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.0fmbit", *rate_gbit * 1000.0);
    for (const auto& [ns, dev] : {std::pair{p.ns_a_, p.dev_a_}, std::pair{p.ns_b_, p.dev_b_}}) {
      cmds.push_back("ip netns exec " + ns + " tc qdisc add dev " + dev + " root tbf rate " + rate +
                     " burst " + burst + " latency 10ms");
    }
  }
  p.owned_ = true;  // the destructor removes whatever part was made
  AGP_RETURN_IF_ERROR(run_all(cmds));
  return p;
}

NetnsPair::NetnsPair(NetnsPair&& o) noexcept
    : ns_a_(std::move(o.ns_a_)),
      ns_b_(std::move(o.ns_b_)),
      dev_a_(std::move(o.dev_a_)),
      dev_b_(std::move(o.dev_b_)),
      address_a_(std::move(o.address_a_)),
      address_b_(std::move(o.address_b_)),
      owned_(o.owned_) {
  o.owned_ = false;
}

NetnsPair::~NetnsPair() {
  if (!owned_) return;
  run("ip netns del " + ns_a_);  // deleting a namespace deletes its veth end, and so the pair
  run("ip netns del " + ns_b_);
}

Status NetnsPair::enter_a() const {
  return enter(ns_a_);
}
Status NetnsPair::enter_b() const {
  return enter(ns_b_);
}

Status NetnsPair::set_link_up(bool up) const {
  return run_all({"ip -n " + ns_a_ + " link set " + dev_a_ + (up ? " up" : " down")});
}

int NetnsPair::exec_a(const std::string& command) const {
  return run("ip netns exec " + ns_a_ + " " + command);
}

int NetnsPair::exec_b(const std::string& command) const {
  return run("ip netns exec " + ns_b_ + " " + command);
}

}  // namespace agp::support
