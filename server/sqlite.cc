#include "server/sqlite.h"

#include "common/error.h"

namespace vidgen::server {

Database::Database(const std::string& path, std::chrono::milliseconds busy_timeout) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    vidgen::Fail(ErrorCode::kUnavailable, "cannot open the job store '{}': {}", path, message);
  }
  sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
  Execute("PRAGMA journal_mode=WAL");
  Execute("PRAGMA synchronous=FULL");
  Execute("PRAGMA foreign_keys=ON");
}

Database::~Database() {
  sqlite3_close(db_);
}

void Database::Execute(std::string_view sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    vidgen::Fail(ErrorCode::kInternal, "job store '{}': {} in `{}`", path_, message, sql);
  }
}

void Database::Fail(std::string_view what) const {
  vidgen::Fail(ErrorCode::kInternal, "job store '{}': {}: {}", path_, what, sqlite3_errmsg(db_));
}

Database::Transaction::Transaction(Database& db) : db_(db) {
  db_.Execute("BEGIN IMMEDIATE");
}

Database::Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Database::Transaction::Commit() {
  for (sqlite3_stmt* statement = sqlite3_next_stmt(db_.handle(), nullptr); statement;
       statement = sqlite3_next_stmt(db_.handle(), statement)) {
    if (sqlite3_stmt_busy(statement)) sqlite3_reset(statement);
  }
  db_.Execute("COMMIT");
  done_ = true;
}

Statement::Statement(Database& db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &statement_, nullptr) != SQLITE_OK) {
    db.Fail(fmt::format("cannot prepare `{}`", sql));
  }
}

Statement::~Statement() {
  sqlite3_finalize(statement_);
}

Statement& Statement::Bind(std::int64_t value) {
  sqlite3_bind_int64(statement_, next_bind_++, value);
  return *this;
}

Statement& Statement::Bind(double value) {
  sqlite3_bind_double(statement_, next_bind_++, value);
  return *this;
}

Statement& Statement::Bind(std::string_view text) {
  sqlite3_bind_text(statement_, next_bind_++, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindBlob(std::string_view bytes) {
  sqlite3_bind_blob(statement_, next_bind_++, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNamed(const char* name, std::int64_t value) {
  if (const int index = sqlite3_bind_parameter_index(statement_, name)) sqlite3_bind_int64(statement_, index, value);
  return *this;
}

Statement& Statement::BindNamed(const char* name, std::string_view text) {
  if (const int index = sqlite3_bind_parameter_index(statement_, name)) {
    sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  return *this;
}

Statement& Statement::BindNull() {
  sqlite3_bind_null(statement_, next_bind_++);
  return *this;
}

bool Statement::Step() {
  const int result = sqlite3_step(statement_);
  if (result == SQLITE_ROW) return true;
  if (result == SQLITE_DONE) return false;
  db_.Fail(fmt::format("`{}` failed", sqlite3_sql(statement_)));
}

void Statement::Run() {
  while (Step()) {
  }
}

std::int64_t Statement::Int(int column) const {
  return sqlite3_column_int64(statement_, column);
}

double Statement::Real(int column) const {
  return sqlite3_column_double(statement_, column);
}

std::string Statement::Text(int column) const {
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement_, column));
  return bytes ? std::string(bytes, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))) : "";
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

}  // namespace vidgen::server
