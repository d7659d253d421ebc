# install(): libraries, public headers, an exported CMake package (find_package(agp_ptp CONFIG))
# and a pkg-config file (agp_ptp.pc).
include(CMakePackageConfigHelpers)

install(TARGETS agp_codec agp_ptp agp_index agp_transport agp_c EXPORT agp_ptpTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY codec/include/ ptp/include/ index/include/ transport/include/ capi/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The reference Llama forward pass and split codecs (component "fidelity"), for model hosts such
# as examples/cpp: built when a BLAS was found (AGP_BUILD_FIDELITY).
set(AGP_INSTALL_FIDELITY OFF)
if(TARGET agp_fidelity)
  set(AGP_INSTALL_FIDELITY ON)
  install(TARGETS agp_fidelity EXPORT agp_ptpTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(DIRECTORY fidelity/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()
install(EXPORT agp_ptpTargets NAMESPACE agp:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/agp_ptp)

configure_package_config_file(cmake/agp_ptpConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/agp_ptpConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/agp_ptp)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/agp_ptpConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/agp_ptpConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/agp_ptpConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/agp_ptp)

# The .pc file locates its prefix relative to itself, so an install moved with --prefix still works.
file(RELATIVE_PATH AGP_PC_TO_PREFIX "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
configure_file(cmake/agp_ptp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/agp_ptp.pc @ONLY)
configure_file(cmake/agp_ptp_c.pc.in ${CMAKE_CURRENT_BINARY_DIR}/agp_ptp_c.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/agp_ptp.pc ${CMAKE_CURRENT_BINARY_DIR}/agp_ptp_c.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
