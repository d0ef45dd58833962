# flowc_runtime_objects(<target>...): the runtime libraries of a generated project and flowc's
# runtime cache (codegen/cpu/build.py). With FLOWC_PREBUILT_RUNTIME set, each target is archived
# from the prebuilt objects listed there, so only the model's own sources compile (the targets
# keep their usage requirements: include folders, libraries, definitions); without it, where
# each target's objects are is written to flowc-objects/<target>.txt for flowc to cache them.
function(flowc_runtime_objects)
  foreach(target IN LISTS ARGN)
    if(FLOWC_PREBUILT_RUNTIME)
      set(listing "${FLOWC_PREBUILT_RUNTIME}/${target}.objects")
      if(NOT EXISTS "${listing}")
        message(FATAL_ERROR "FLOWC_PREBUILT_RUNTIME=${FLOWC_PREBUILT_RUNTIME} holds no ${target}.objects")
      endif()
      file(STRINGS "${listing}" objects)
      list(TRANSFORM objects PREPEND "${FLOWC_PREBUILT_RUNTIME}/${target}/")
      set_target_properties(${target} PROPERTIES SOURCES "${objects}" LINKER_LANGUAGE CXX)
    else()
      file(GENERATE OUTPUT "${CMAKE_BINARY_DIR}/flowc-objects/${target}.txt"
           CONTENT "$<JOIN:$<TARGET_OBJECTS:${target}>,\n>\n")
    endif()
  endforeach()
endfunction()
