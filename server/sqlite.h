// A thin RAII layer over SQLite: one connection, prepared statements with typed binds and columns, transactions.
// Failures throw vidgen::Error(INTERNAL) naming the statement.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vidgen::server {

class Database;

class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binds in order, from the first parameter; returns *this to chain.
  Statement& Bind(std::int64_t value);
  Statement& Bind(int value) { return Bind(static_cast<std::int64_t>(value)); }
  Statement& Bind(double value);
  Statement& Bind(std::string_view text);
  Statement& Bind(const char* text) { return Bind(std::string_view(text)); }
  Statement& Bind(const std::string& text) { return Bind(std::string_view(text)); }
  Statement& BindBlob(std::string_view bytes);
  Statement& BindNull();
  // Binds a named parameter (":now"); a statement without it is left as it is, so one set of values can serve
  // statements that use some of them.
  Statement& BindNamed(const char* name, std::int64_t value);
  Statement& BindNamed(const char* name, std::string_view text);

  bool Step();  // true while a row is available
  void Run();   // steps to the end

  std::int64_t Int(int column) const;
  double Real(int column) const;
  std::string Text(int column) const;  // NULL reads as ""
  bool IsNull(int column) const;

 private:
  Database& db_;
  sqlite3_stmt* statement_ = nullptr;
  int next_bind_ = 1;
};

class Database {
 public:
  // Opens (creating) the file in WAL mode with synchronous=FULL: a committed transaction survives a crash of the
  // process or the machine. A statement waits up to `busy_timeout` for a lock another process holds.
  Database(const std::string& path, std::chrono::milliseconds busy_timeout);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  void Execute(std::string_view sql);  // statements without parameters or rows
  std::int64_t Changes() const { return sqlite3_changes(db_); }
  [[noreturn]] void Fail(std::string_view what) const;
  sqlite3* handle() { return db_; }

  // BEGIN IMMEDIATE .. COMMIT, rolled back when the scope ends without Commit(). Commit first resets every
  // statement still stepping: an open read would pin the WAL and keep SQLite from checkpointing it.
  class Transaction {
   public:
    explicit Transaction(Database& db);
    ~Transaction();
    void Commit();

   private:
    Database& db_;
    bool done_ = false;
  };

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace vidgen::server
