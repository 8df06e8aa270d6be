// One helper for the failures tests expect: the call must throw vidgen::Error with this code and a message that
// contains this fragment.
#pragma once

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "common/error.h"

namespace vidgen::testing {

template <typename Call>
::testing::AssertionResult FailsWith(Call&& call, ErrorCode code, std::string_view fragment) {
  try {
    call();
  } catch (const Error& e) {
    if (e.code() != code) {
      return ::testing::AssertionFailure() << "threw " << ErrorCodeName(e.code()) << " (" << e.what() << "), expected "
                                           << ErrorCodeName(code);
    }
    if (std::string_view(e.what()).find(fragment) == std::string_view::npos) {
      return ::testing::AssertionFailure() << "the message \"" << e.what() << "\" lacks \"" << fragment << "\"";
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "did not throw; expected " << ErrorCodeName(code) << " with \"" << fragment
                                       << "\"";
}

}  // namespace vidgen::testing

// EXPECT_FAILS(store->Get("x"), kNotFound, "not found"): the statement throws vidgen::Error of that code whose
// message contains the fragment.
#define EXPECT_FAILS(statement, code, fragment) \
  EXPECT_TRUE(::vidgen::testing::FailsWith([&] { (void)(statement); }, ::vidgen::ErrorCode::code, fragment))
