// An owning, uninitialised, 64-byte aligned byte buffer (frame bodies, decode targets). It can be
// reused for a smaller size without reallocating (reuse_for), so a receiver can recycle bodies.
#pragma once

#include <cstddef>
#include <new>
#include <span>
#include <utility>

namespace agp::ptp {

class AlignedBuffer {
 public:
  static constexpr std::size_t kAlignment = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t size)
      : data_(size ? static_cast<std::byte*>(::operator new (size, std::align_val_t{kAlignment}))
                   : nullptr),
        size_(size),
        capacity_(size) {}
  ~AlignedBuffer() { release(); }
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  // Makes the buffer `size` bytes long when its allocation holds that many; false otherwise.
  bool reuse_for(std::size_t size) {
    if (size > capacity_ || data_ == nullptr) return false;
    size_ = size;
    return true;
  }
  std::span<std::byte> span() { return {data_, size_}; }
  std::span<const std::byte> span() const { return {data_, size_}; }

 private:
  void release() {
    if (data_) ::operator delete (data_, std::align_val_t{kAlignment});
    data_ = nullptr;
    size_ = 0;
    capacity_ = 0;
  }
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace agp::ptp
