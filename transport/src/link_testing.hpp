// Test support (internal): what the public API cannot do on purpose.
#pragma once

#include <memory>

#include "agp/transport/link.hpp"
#include "link_impl.hpp"

namespace agp::transport {

struct LinkTesting {
  // Drops the link as a crashed process would: no goodbye, no abort, the connection just ends.
  static void vanish(std::unique_ptr<Link>& link) {
    if (!link) return;
    {
      detail::EventLoop::Call call(*link->impl_->loop);
      link->impl_->vanish = true;
    }
    link.reset();
  }
};

}  // namespace agp::transport
