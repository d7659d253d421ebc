# Cross-compiling for arm64 Linux on Debian/Ubuntu (multiarch :arm64 dev packages), with tests run
# under qemu-user. Used by `./dev test-arm64`; the Macs run the same arm64 code paths natively.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Host programs (flatc) come from the build machine; libraries only from the arm64 multiarch dirs.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# The emulated programs load their C library from the multiarch :arm64 packages (libc6:arm64 comes
# with the :arm64 dev packages), so the dynamic loader must come from there too: the cross
# toolchain's loader (/usr/aarch64-linux-gnu) is from another glibc build, and with a loader and a
# libc.so of different builds the first pthread_create never returns (they share private state).
if(EXISTS /lib/ld-linux-aarch64.so.1)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
endif()
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
