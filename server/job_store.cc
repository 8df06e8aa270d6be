#include "server/job_store.h"

#include <random>

#include "common/error.h"

namespace vidgen::server {
namespace {

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 128 random bits in hex: job and lease ids that cannot be guessed or collide.
std::string RandomId(const char* prefix) {
  static thread_local std::mt19937_64 generator(std::random_device{}());
  return fmt::format("{}{:016x}{:016x}", prefix, generator(), generator());
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  idempotency_key TEXT,
  spec BLOB NOT NULL,
  model TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  stage TEXT NOT NULL,
  step INTEGER NOT NULL DEFAULT 0,
  total_steps INTEGER NOT NULL DEFAULT 0,
  eta_seconds REAL NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  lease_id TEXT,
  lease_group TEXT,
  lease_expires_ms INTEGER,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  video_path TEXT,
  video_bytes INTEGER NOT NULL DEFAULT 0,
  video_sha256 TEXT NOT NULL DEFAULT '',
  video_mime TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(tenant, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant, seq DESC);
)sql";

constexpr const char* kJobColumns =
    "seq, id, spec, priority, state, stage, step, total_steps, eta_seconds, message, attempts, created_ms, "
    "started_ms, finished_ms, video_bytes, video_sha256, video_mime";

bool Terminal(int state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

}  // namespace

JobStore::JobStore(const std::string& path, StoreLimits limits) : limits_(limits), db_(path) {
  db_.Execute(kSchema);
  Statement(db_, "UPDATE jobs SET lease_expires_ms = max(lease_expires_ms, ?) WHERE state = ?")
      .Bind(NowMs() + limits_.lease.count())
      .Bind(static_cast<int>(v1::RUNNING))
      .Run();
}

JobStore::Submitted JobStore::Submit(const std::string& tenant, const v1::JobSpec& spec, int priority,
                                     const std::string& idempotency_key) {
  const std::string bytes = spec.SerializeAsString();
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  if (!idempotency_key.empty()) {
    Statement existing(db_, "SELECT id, spec FROM jobs WHERE tenant = ? AND idempotency_key = ?");
    existing.Bind(tenant).Bind(idempotency_key);
    if (existing.Step()) {
      if (existing.Text(1) != bytes) {
        vidgen::Fail(ErrorCode::kAlreadyExists, "idempotency key '{}' was used by job {} with a different request",
                     idempotency_key, existing.Text(0));
      }
      return {existing.Text(0), true};
    }
  }
  Statement queued(db_, "SELECT count(*) FROM jobs WHERE state = ?");
  queued.Bind(static_cast<int>(v1::QUEUED)).Step();
  if (queued.Int(0) >= limits_.max_queued) {
    vidgen::Fail(ErrorCode::kResourceExhausted, "the queue is full ({} jobs waiting); retry in about {} s",
                 queued.Int(0), std::max<std::int64_t>(5, limits_.lease.count() / 1000));
  }
  const std::string id = RandomId("job-");
  Statement insert(db_,
                   "INSERT INTO jobs (id, tenant, idempotency_key, spec, model, priority, state, stage, total_steps, "
                   "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)");
  insert.Bind(id).Bind(tenant);
  if (idempotency_key.empty()) {
    insert.BindNull();
  } else {
    insert.Bind(idempotency_key);
  }
  insert.BindBlob(bytes).Bind(spec.model()).Bind(priority).Bind(static_cast<int>(v1::QUEUED)).Bind(spec.steps());
  insert.Bind(NowMs()).Run();
  transaction.Commit();
  Changed();
  return {id, false};
}

v1::Job JobStore::ReadJob(Statement& row) {
  v1::Job job;
  job.set_id(row.Text(1));
  job.mutable_spec()->ParseFromString(row.Text(2));
  job.set_priority(static_cast<int>(row.Int(3)));
  job.set_state(static_cast<v1::JobState>(row.Int(4)));
  job.set_stage(row.Text(5));
  job.set_step(static_cast<int>(row.Int(6)));
  job.set_total_steps(static_cast<int>(row.Int(7)));
  job.set_eta_seconds(row.Real(8));
  job.set_message(row.Text(9));
  job.set_attempts(static_cast<int>(row.Int(10)));
  job.set_created_unix_ms(row.Int(11));
  job.set_started_unix_ms(row.Int(12));
  job.set_finished_unix_ms(row.Int(13));
  job.set_video_bytes(row.Int(14));
  job.set_video_sha256(row.Text(15));
  job.set_video_mime_type(row.Text(16));
  if (job.state() == v1::QUEUED) job.set_queue_position(QueuePosition(row.Int(0), job.priority()));
  return job;
}

int JobStore::QueuePosition(std::int64_t seq, int priority) {
  Statement ahead(db_, "SELECT count(*) FROM jobs WHERE state = ? AND (priority > ? OR (priority = ? AND seq <= ?))");
  ahead.Bind(static_cast<int>(v1::QUEUED)).Bind(priority).Bind(priority).Bind(seq).Step();
  return static_cast<int>(ahead.Int(0));
}

v1::Job JobStore::Get(const std::string& tenant, const std::string& job_id) {
  std::lock_guard lock(mutex_);
  Statement row(db_, fmt::format("SELECT {} FROM jobs WHERE id = ? AND tenant = ?", kJobColumns));
  row.Bind(job_id).Bind(tenant);
  if (!row.Step()) vidgen::Fail(ErrorCode::kNotFound, "job '{}' not found", job_id);
  return ReadJob(row);
}

v1::ListJobsResponse JobStore::List(const std::string& tenant, const v1::ListJobsRequest& request) {
  const int page_size = request.page_size() <= 0 ? 50 : std::min(request.page_size(), 500);
  std::int64_t before = std::numeric_limits<std::int64_t>::max();
  if (!request.page_token().empty()) {
    try {
      std::size_t used = 0;
      before = std::stoll(request.page_token(), &used);
      if (used != request.page_token().size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      vidgen::Fail(ErrorCode::kInvalidArgument, "page_token '{}' is not one this server gave", request.page_token());
    }
  }
  std::string sql = fmt::format("SELECT {} FROM jobs WHERE tenant = ? AND seq < ?", kJobColumns);
  if (!request.model().empty()) sql += " AND model = ?";
  if (request.states_size() > 0) {
    sql += " AND state IN (";
    for (int i = 0; i < request.states_size(); ++i) sql += i ? ", ?" : "?";
    sql += ")";
  }
  sql += " ORDER BY seq DESC LIMIT ?";
  std::lock_guard lock(mutex_);
  Statement rows(db_, sql);
  rows.Bind(tenant).Bind(before);
  if (!request.model().empty()) rows.Bind(request.model());
  for (const int state : request.states()) rows.Bind(state);
  rows.Bind(page_size + 1);
  v1::ListJobsResponse response;
  std::int64_t last_seq = 0;
  while (rows.Step()) {
    if (response.jobs_size() == page_size) {
      response.set_next_page_token(std::to_string(last_seq));
      break;
    }
    last_seq = rows.Int(0);
    *response.add_jobs() = ReadJob(rows);
  }
  return response;
}

v1::Job JobStore::Cancel(const std::string& tenant, const std::string& job_id) {
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    Statement row(db_, "SELECT state FROM jobs WHERE id = ? AND tenant = ?");
    row.Bind(job_id).Bind(tenant);
    if (!row.Step()) vidgen::Fail(ErrorCode::kNotFound, "job '{}' not found", job_id);
    const int state = static_cast<int>(row.Int(0));
    if (Terminal(state)) {
      vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' already ended ({})", job_id,
                   v1::JobState_Name(static_cast<v1::JobState>(state)));
    }
    if (state == v1::QUEUED) {
      Statement(db_,
                "UPDATE jobs SET state = ?, stage = 'cancelled', message = 'cancelled while queued', finished_ms = ? "
                "WHERE id = ?")
          .Bind(static_cast<int>(v1::CANCELLED))
          .Bind(NowMs())
          .Bind(job_id)
          .Run();
    } else {
      Statement(db_, "UPDATE jobs SET cancel_requested = 1, message = 'cancel requested' WHERE id = ?")
          .Bind(job_id)
          .Run();
    }
    transaction.Commit();
  }
  Changed();
  return Get(tenant, job_id);
}

StoredArtifact JobStore::Artifact(const std::string& tenant, const std::string& job_id) {
  std::lock_guard lock(mutex_);
  Statement row(db_,
                "SELECT state, video_path, video_bytes, video_sha256, video_mime FROM jobs WHERE id = ? AND tenant = ?");
  row.Bind(job_id).Bind(tenant);
  if (!row.Step()) vidgen::Fail(ErrorCode::kNotFound, "job '{}' not found", job_id);
  if (row.Int(0) != v1::SUCCEEDED) {
    vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' has no video: it is {}", job_id,
                 v1::JobState_Name(static_cast<v1::JobState>(row.Int(0))));
  }
  if (row.IsNull(1)) vidgen::Fail(ErrorCode::kNotFound, "the video of job '{}' has expired", job_id);
  return {row.Text(1), row.Text(3), row.Text(4), row.Int(2)};
}

std::optional<JobLease> JobStore::LeaseNext(const std::string& group_id, const std::vector<std::string>& models) {
  if (models.empty()) return std::nullopt;
  std::string sql = "SELECT id, spec, attempts FROM jobs WHERE state = ? AND model IN (";
  for (std::size_t i = 0; i < models.size(); ++i) sql += i ? ", ?" : "?";
  sql += ") ORDER BY priority DESC, seq LIMIT 1";
  std::optional<JobLease> lease;
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    Statement next(db_, sql);
    next.Bind(static_cast<int>(v1::QUEUED));
    for (const auto& model : models) next.Bind(model);
    if (!next.Step()) return std::nullopt;
    lease.emplace();
    lease->job_id = next.Text(0);
    lease->spec.ParseFromString(next.Text(1));
    lease->attempt = static_cast<int>(next.Int(2)) + 1;
    lease->lease_id = RandomId("lease-");
    const std::int64_t now = NowMs();
    Statement(db_,
              "UPDATE jobs SET state = ?, stage = 'loading', step = 0, eta_seconds = 0, attempts = ?, lease_id = ?, "
              "lease_group = ?, lease_expires_ms = ?, started_ms = CASE WHEN started_ms = 0 THEN ? ELSE started_ms "
              "END WHERE id = ?")
        .Bind(static_cast<int>(v1::RUNNING))
        .Bind(lease->attempt)
        .Bind(lease->lease_id)
        .Bind(group_id)
        .Bind(now + limits_.lease.count())
        .Bind(now)
        .Bind(lease->job_id)
        .Run();
    transaction.Commit();
  }
  Changed();
  return lease;
}

v1::HeartbeatResponse JobStore::Heartbeat(const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    Statement(db_,
              "UPDATE jobs SET stage = ?, step = ?, total_steps = ?, eta_seconds = ?, lease_expires_ms = ? "
              "WHERE id = ? AND lease_id = ? AND state = ?")
        .Bind(request.stage())
        .Bind(request.step())
        .Bind(request.total_steps())
        .Bind(request.eta_seconds())
        .Bind(NowMs() + limits_.lease.count())
        .Bind(request.job_id())
        .Bind(request.lease_id())
        .Bind(static_cast<int>(v1::RUNNING))
        .Run();
    if (db_.Changes() == 0) {
      response.set_lease_lost(true);
      return response;
    }
    Statement cancel(db_, "SELECT cancel_requested FROM jobs WHERE id = ?");
    cancel.Bind(request.job_id()).Step();
    response.set_cancel(cancel.Int(0) != 0);
    transaction.Commit();
  }
  Changed();
  return response;
}

void JobStore::AttachArtifact(const std::string& job_id, const std::string& lease_id,
                              const StoredArtifact& artifact) {
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    Statement(db_,
              "UPDATE jobs SET video_path = ?, video_bytes = ?, video_sha256 = ?, video_mime = ? "
              "WHERE id = ? AND lease_id = ? AND state = ?")
        .Bind(artifact.path)
        .Bind(artifact.bytes)
        .Bind(artifact.sha256)
        .Bind(artifact.mime_type)
        .Bind(job_id)
        .Bind(lease_id)
        .Bind(static_cast<int>(v1::RUNNING))
        .Run();
    if (db_.Changes() == 0) {
      vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}' any more", job_id, lease_id);
    }
    transaction.Commit();
  }
  Changed();
}

void JobStore::Complete(const v1::CompleteJobRequest& request) {
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    Statement(db_,
              "UPDATE jobs SET state = ?, stage = 'done', step = total_steps, eta_seconds = 0, message = ?, "
              "finished_ms = ?, lease_id = NULL WHERE id = ? AND lease_id = ? AND state = ? AND video_path IS NOT NULL")
        .Bind(static_cast<int>(v1::SUCCEEDED))
        .Bind(fmt::format("{} full and {} forecast steps in {:.1f} s", request.full_steps(), request.predicted_steps(),
                          request.seconds()))
        .Bind(NowMs())
        .Bind(request.job_id())
        .Bind(request.lease_id())
        .Bind(static_cast<int>(v1::RUNNING))
        .Run();
    if (db_.Changes() == 0) {
      vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}' with its video uploaded",
                   request.job_id(), request.lease_id());
    }
    transaction.Commit();
  }
  Changed();
}

void JobStore::Fail(const v1::FailJobRequest& request) {
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    Statement row(db_, "SELECT attempts, cancel_requested FROM jobs WHERE id = ? AND lease_id = ? AND state = ?");
    row.Bind(request.job_id()).Bind(request.lease_id()).Bind(static_cast<int>(v1::RUNNING));
    if (!row.Step()) {
      vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}' any more", request.job_id(),
                   request.lease_id());
    }
    const bool cancelled = request.cancelled() || row.Int(1) != 0;
    const bool retry = !cancelled && request.retryable() && row.Int(0) < limits_.max_attempts;
    const int state = cancelled ? v1::CANCELLED : retry ? v1::QUEUED : v1::FAILED;
    Statement(db_,
              "UPDATE jobs SET state = ?, stage = ?, message = ?, lease_id = NULL, finished_ms = ? WHERE id = ?")
        .Bind(state)
        .Bind(cancelled ? "cancelled" : retry ? "queued" : "failed")
        .Bind(cancelled ? "cancelled while running" : request.message())
        .Bind(retry ? std::int64_t{0} : NowMs())
        .Bind(request.job_id())
        .Run();
    transaction.Commit();
  }
  Changed();
}

int JobStore::ExpireLeases() {
  int changed = 0;
  {
    std::lock_guard lock(mutex_);
    Database::Transaction transaction(db_);
    const std::int64_t now = NowMs();
    const int running = v1::RUNNING;
    Statement(db_,
              "UPDATE jobs SET state = ?, stage = 'cancelled', message = 'cancelled; its worker group stopped "
              "answering', lease_id = NULL, finished_ms = ? WHERE state = ? AND lease_expires_ms < ? AND "
              "cancel_requested = 1")
        .Bind(static_cast<int>(v1::CANCELLED))
        .Bind(now)
        .Bind(running)
        .Bind(now)
        .Run();
    changed += static_cast<int>(db_.Changes());
    Statement(db_,
              "UPDATE jobs SET state = ?, stage = 'failed', message = 'its worker group stopped answering ' || "
              "attempts || ' times', lease_id = NULL, finished_ms = ? WHERE state = ? AND lease_expires_ms < ? AND "
              "attempts >= ?")
        .Bind(static_cast<int>(v1::FAILED))
        .Bind(now)
        .Bind(running)
        .Bind(now)
        .Bind(limits_.max_attempts)
        .Run();
    changed += static_cast<int>(db_.Changes());
    Statement(db_,
              "UPDATE jobs SET state = ?, stage = 'queued', step = 0, eta_seconds = 0, message = 'requeued: its "
              "worker group stopped answering', lease_id = NULL WHERE state = ? AND lease_expires_ms < ?")
        .Bind(static_cast<int>(v1::QUEUED))
        .Bind(running)
        .Bind(now)
        .Run();
    changed += static_cast<int>(db_.Changes());
    transaction.Commit();
  }
  if (changed > 0) Changed();
  return changed;
}

std::vector<std::string> JobStore::ExpireArtifacts(std::chrono::system_clock::time_point cutoff) {
  const std::int64_t cutoff_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(cutoff.time_since_epoch()).count();
  std::vector<std::string> paths;
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  Statement rows(db_, "SELECT video_path FROM jobs WHERE video_path IS NOT NULL AND finished_ms > 0 AND finished_ms < ?");
  rows.Bind(cutoff_ms);
  while (rows.Step()) paths.push_back(rows.Text(0));
  Statement(db_, "UPDATE jobs SET video_path = NULL WHERE video_path IS NOT NULL AND finished_ms > 0 AND finished_ms < ?")
      .Bind(cutoff_ms)
      .Run();
  transaction.Commit();
  return paths;
}

std::uint64_t JobStore::version() const {
  std::lock_guard lock(version_mutex_);
  return version_;
}

void JobStore::WaitForChange(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(version_mutex_);
  version_changed_.wait_for(lock, timeout, [&] { return version_ != seen; });
}

void JobStore::Changed() {
  {
    std::lock_guard lock(version_mutex_);
    ++version_;
  }
  version_changed_.notify_all();
}

}  // namespace vidgen::server
