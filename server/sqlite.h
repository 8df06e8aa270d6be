// A thin RAII layer over SQLite: one connection, prepared statements with typed binds and columns, transactions.
// Failures throw vidgen::Error(INTERNAL) naming the statement.
#pragma once

#include <sqlite3.h>

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
  // process or the machine.
  explicit Database(const std::string& path);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  void Execute(std::string_view sql);  // statements without parameters or rows
  std::int64_t Changes() const { return sqlite3_changes(db_); }
  [[noreturn]] void Fail(std::string_view what) const;
  sqlite3* handle() { return db_; }

  // BEGIN IMMEDIATE .. COMMIT, rolled back when the scope ends without Commit().
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
