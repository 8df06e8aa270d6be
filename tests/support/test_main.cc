// The main of every vidgen test executable: GoogleTest, or one rank of a multi-rank test (see ranks.h).
#include <gtest/gtest.h>

#include "tests/support/ranks.h"

int main(int argc, char** argv) {
  int exit_code = 0;
  if (vidgen::testing::MaybeRunRankBody(&exit_code)) return exit_code;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
