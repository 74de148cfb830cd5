# The rules the Python runtime and this library share, declared once in
# toolkit/runtime/rules.json (read by toolkit/runtime/rules.py), written here as the C header
# emo_rules.h: every member of every group becomes EMO_<GROUP>_<NAME> (strings quoted,
# numbers as written). CMake re-runs when the file changes, and the header is rewritten only
# when its text does.
function(emo_rules_header json_file header)
  if(NOT EXISTS "${json_file}")
    message(FATAL_ERROR "the shared rules ${json_file} are missing (EMO_RULES_JSON)")
  endif()
  file(READ "${json_file}" text)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${json_file}")
  string(CONCAT out
         "/* Generated from toolkit/runtime/rules.json by cpp/cmake/Rules.cmake: edit that file. */\n"
         "#ifndef EMO_RULES_H_\n#define EMO_RULES_H_\n")
  string(JSON groups LENGTH "${text}")
  math(EXPR last_group "${groups} - 1")
  foreach(g RANGE ${last_group})
    string(JSON group MEMBER "${text}" ${g})
    string(JSON kind TYPE "${text}" ${group})
    if(NOT kind STREQUAL "OBJECT")
      continue()  # "about"
    endif()
    string(APPEND out "\n/* ${group} */\n")
    string(JSON members LENGTH "${text}" ${group})
    math(EXPR last_member "${members} - 1")
    foreach(m RANGE ${last_member})
      string(JSON key MEMBER "${text}" ${group} ${m})
      string(JSON value GET "${text}" ${group} ${key})
      string(JSON kind TYPE "${text}" ${group} ${key})
      string(TOUPPER "EMO_${group}_${key}" name)
      if(kind STREQUAL "STRING")
        set(value "\"${value}\"")
      elseif(NOT kind STREQUAL "NUMBER")
        message(FATAL_ERROR "${json_file}: ${group}.${key} is neither a number nor a string")
      endif()
      string(APPEND out "#define ${name} ${value}\n")
    endforeach()
  endforeach()
  string(APPEND out "\n#endif  /* EMO_RULES_H_ */\n")
  file(CONFIGURE OUTPUT "${header}" CONTENT "${out}" @ONLY)
endfunction()
