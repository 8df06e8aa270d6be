#include "server/job_store.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/error.h"

namespace vidgen::server {
namespace {

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
  video_mime TEXT NOT NULL DEFAULT '',
  request BLOB,
  images BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(tenant, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant, seq DESC);
DROP INDEX IF EXISTS jobs_counts;
)sql";

// Every model's jobs by state, kept by triggers in the transaction that moves a job: a metrics scrape reads these
// few rows, not an index over every job the store ever held (jobs stay after their videos expire).
constexpr const char* kJobCountsSchema = R"sql(
CREATE TABLE job_counts (
  model TEXT NOT NULL,
  state INTEGER NOT NULL,
  jobs INTEGER NOT NULL,
  PRIMARY KEY (model, state)
) WITHOUT ROWID;
INSERT INTO job_counts SELECT model, state, count(*) FROM jobs GROUP BY model, state;
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
  INSERT INTO job_counts VALUES (new.model, new.state, 1) ON CONFLICT DO UPDATE SET jobs = jobs + 1;
END;
CREATE TRIGGER job_counts_update AFTER UPDATE OF state ON jobs WHEN old.state <> new.state BEGIN
  UPDATE job_counts SET jobs = jobs - 1 WHERE model = old.model AND state = old.state;
  INSERT INTO job_counts VALUES (new.model, new.state, 1) ON CONFLICT DO UPDATE SET jobs = jobs + 1;
END;
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
  UPDATE job_counts SET jobs = jobs - 1 WHERE model = old.model AND state = old.state;
END;
)sql";

constexpr const char* kJobColumns =
    "seq, id, spec, priority, state, stage, step, total_steps, eta_seconds, message, attempts, created_ms, "
    "started_ms, finished_ms, video_bytes, video_sha256, video_mime";

// What a worker may report as a running job's stage.
constexpr std::array<std::string_view, 7> kStages = {"loading",        "encoding_text", "denoising", "decoding",
                                                     "encoding_video", "uploading",     "done"};

// A spec as stored: its images in a column of their own, so that what reads specs by the dozen (a listing, a watch,
// the choice of a lease among the queue) never copies them. Both halves are JobSpec serializations, so the two
// concatenated parse as the whole spec.
std::pair<std::string, std::string> SplitImages(const v1::JobSpec& spec) {
  v1::JobSpec head = spec, images;
  images.mutable_image()->swap(*head.mutable_image());  // moved, not copied again
  images.mutable_last_image()->swap(*head.mutable_last_image());
  return {head.SerializeAsString(), images.SerializeAsString()};
}

// SQLite takes an empty file for an empty database: refuse it rather than start afresh over what was a store.
const std::string& NonEmptyStore(const std::string& path) {
  std::error_code error;
  if (std::filesystem::exists(path, error) && std::filesystem::file_size(path, error) == 0 && !error) {
    vidgen::Fail(ErrorCode::kFailedPrecondition,
                 "the job store '{}' is an empty file, not a store this server wrote (a truncated copy?): restore it, "
                 "or remove it to start with no jobs",
                 path);
  }
  return path;
}

}  // namespace

JobStore::JobStore(const std::string& path, StoreLimits limits, const Clock& clock)
    : limits_(limits), clock_(clock), db_(NonEmptyStore(path), limits.busy_timeout) {
  db_.Execute(kSchema);
  // Stores from before the `request` and `images` columns gain them (their jobs compare idempotent retries by the
  // normalized spec, which holds the images too).
  for (const char* column : {"request", "images"}) {
    Statement columns(db_, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = ?");
    columns.Bind(column).Step();
    if (columns.Int(0) == 0) db_.Execute(fmt::format("ALTER TABLE jobs ADD COLUMN {} BLOB", column));
  }
  // Stores from before the counts gain them, counted once from their jobs.
  Statement counts(db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'job_counts'");
  counts.Step();
  if (counts.Int(0) == 0) {
    Database::Transaction transaction(db_);
    db_.Execute(kJobCountsSchema);
    transaction.Commit();
  }
  // A store that fails here (a corrupt page, a lock held from outside) still serves what it can read; the janitor
  // retries its lease work and reports the store unhealthy meanwhile.
  try {
    Statement(db_, "UPDATE jobs SET lease_expires_ms = max(lease_expires_ms, ?) WHERE state = ?")
        .Bind(clock_.NowMs() + limits_.lease.count())
        .Bind(static_cast<int>(JobState::kRunning))
        .Run();
  } catch (const Error& e) {
    spdlog::error("could not renew the leases of running jobs: {}", e.what());
  }
}

int JobStore::Transition(Edge edge, std::string_view where, const std::string& job_id, const Move& move) {
  const auto& rule = RuleOf(edge);
  std::vector<int> from;
  for (const auto state : rule.from) from.push_back(static_cast<int>(state));
  Statement update(
      db_, fmt::format("UPDATE jobs SET state = {}, {}{} WHERE state IN ({}) AND ({})", static_cast<int>(rule.to),
                       rule.resets, move.message.empty() ? "" : ", message = :message", fmt::join(from, ", "), where));
  const std::int64_t now = clock_.NowMs();
  update.BindNamed(":now", now)
      .BindNamed(":id", job_id)
      .BindNamed(":message", move.message)
      .BindNamed(":lease_id", move.lease_id)
      .BindNamed(":group", move.group)
      .BindNamed(":lease_expires_ms", now + limits_.lease.count());
  update.Run();
  return static_cast<int>(db_.Changes());
}

JobStore::Submitted JobStore::Submit(const SubmitRequest& request) {
  const auto [spec_bytes, image_bytes] = SplitImages(request.spec);
  const std::string& key = request.idempotency_key;
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  if (!key.empty()) {
    Statement existing(db_, "SELECT id, spec, request, priority FROM jobs WHERE tenant = ? AND idempotency_key = ?");
    existing.Bind(request.tenant).Bind(key);
    if (existing.Step()) {
      const std::string id = existing.Text(0);
      const bool same_request = existing.IsNull(2) ? existing.Text(1) == request.spec.SerializeAsString()
                                                   : existing.Text(2) == request.request;
      if (!same_request) {
        vidgen::Fail(ErrorCode::kAlreadyExists, "idempotency key '{}' was used by job {} with a different request", key,
                     id);
      }
      if (existing.Int(3) != request.priority) {
        vidgen::Fail(ErrorCode::kAlreadyExists, "idempotency key '{}' was used by job {} at priority {}, not {}", key,
                     id, existing.Int(3), request.priority);
      }
      return {id, true};
    }
  }
  Statement queued(db_, "SELECT count(*) FROM jobs WHERE state = ?");
  queued.Bind(static_cast<int>(JobState::kQueued)).Step();
  if (queued.Int(0) >= limits_.max_queued) {
    vidgen::Fail(ErrorCode::kResourceExhausted, "the queue is full ({} jobs waiting); retry in about {} s",
                 queued.Int(0), std::max<std::int64_t>(5, limits_.lease.count() / 1000));
  }
  const std::string id = RandomId("job-");
  Statement insert(db_,
                   "INSERT INTO jobs (id, tenant, idempotency_key, spec, images, request, model, priority, state, "
                   "stage, total_steps, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)");
  insert.Bind(id).Bind(request.tenant);
  if (key.empty()) {
    insert.BindNull();
  } else {
    insert.Bind(key);
  }
  insert.BindBlob(spec_bytes)
      .BindBlob(image_bytes)
      .BindBlob(request.request)
      .Bind(request.spec.model())
      .Bind(request.priority);
  insert.Bind(static_cast<int>(JobState::kQueued)).Bind(request.spec.steps()).Bind(clock_.NowMs()).Run();
  transaction.Commit();
  events_.QueueChanged();
  return {id, false};
}

v1::Job JobStore::ReadJob(Statement& row) {
  v1::Job job;
  job.set_id(row.Text(1));
  job.mutable_spec()->ParseFromString(row.Text(2));
  // The images stay on the server with the job (and go out with its lease); a job's view is not their copy. (They
  // are in `spec` only in jobs from before the `images` column.)
  job.mutable_spec()->clear_image();
  job.mutable_spec()->clear_last_image();
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
  ahead.Bind(static_cast<int>(JobState::kQueued)).Bind(priority).Bind(priority).Bind(seq).Step();
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
      vidgen::Fail(ErrorCode::kInvalidArgument, "page_token '{}' is not one this server gave",
                   request.page_token().substr(0, 40));
    }
  }
  if (request.states_size() > 8) vidgen::Fail(ErrorCode::kInvalidArgument, "at most 8 states may be listed");
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
    const auto state = static_cast<JobState>(row.Int(0));
    if (Terminal(state)) {
      vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' already ended ({})", job_id, StateName(state));
    }
    if (state == JobState::kQueued) {
      RequireEdge(state, Edge::kCancelQueued);
      Transition(Edge::kCancelQueued, "id = :id", job_id, {"cancelled while queued", "", ""});
    } else {
      Statement(db_, "UPDATE jobs SET cancel_requested = 1, message = 'cancel requested' WHERE id = ?")
          .Bind(job_id)
          .Run();
    }
    transaction.Commit();
    if (state == JobState::kQueued) events_.QueueChanged();
    events_.JobChanged(job_id);
  }
  return Get(tenant, job_id);
}

StoredArtifact JobStore::Artifact(const std::string& tenant, const std::string& job_id) {
  std::lock_guard lock(mutex_);
  Statement row(
      db_, "SELECT state, video_path, video_bytes, video_sha256, video_mime FROM jobs WHERE id = ? AND tenant = ?");
  row.Bind(job_id).Bind(tenant);
  if (!row.Step()) vidgen::Fail(ErrorCode::kNotFound, "job '{}' not found", job_id);
  const auto state = static_cast<JobState>(row.Int(0));
  if (state != JobState::kSucceeded) {
    vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' has no video: it is {}", job_id, StateName(state));
  }
  if (row.IsNull(1)) vidgen::Fail(ErrorCode::kNotFound, "the video of job '{}' has expired", job_id);
  return {row.Text(1), row.Text(3), row.Text(4), row.Int(2)};
}

std::vector<JobCount> JobStore::CountJobs() {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::int64_t> oldest_queued;
  Statement oldest(db_, kOldestQueuedSql);
  oldest.Bind(static_cast<int>(JobState::kQueued));
  while (oldest.Step()) oldest_queued[oldest.Text(0)] = oldest.Int(1);
  Statement rows(db_, kCountJobsSql);
  std::vector<JobCount> counts;
  while (rows.Step()) {
    JobCount count{rows.Text(0), static_cast<JobState>(rows.Int(1)), rows.Int(2)};
    if (count.state == JobState::kQueued) count.oldest_created_ms = oldest_queued[count.model];
    counts.push_back(std::move(count));
  }
  return counts;
}

std::optional<JobLease> JobStore::LeaseNext(const std::string& group_id, const std::vector<std::string>& models,
                                            const std::function<bool(const v1::JobSpec&)>& take) {
  if (models.empty()) return std::nullopt;
  std::string sql = "SELECT id, spec, attempts, created_ms, seq FROM jobs WHERE state = ? AND model IN (";
  for (std::size_t i = 0; i < models.size(); ++i) sql += i ? ", ?" : "?";
  sql += fmt::format(") ORDER BY priority DESC, seq LIMIT {}", take ? kLeaseCandidates : 1);
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  Statement next(db_, sql);
  next.Bind(static_cast<int>(JobState::kQueued));
  for (const auto& model : models) next.Bind(model);
  std::optional<JobLease> lease;
  std::int64_t seq = 0;
  while (!lease && next.Step()) {
    JobLease candidate;
    candidate.spec.ParseFromString(next.Text(1));  // without its images: `take` sizes the job by its fields
    if (take && !take(candidate.spec)) continue;
    candidate.job_id = next.Text(0);
    candidate.attempt = static_cast<int>(next.Int(2)) + 1;
    candidate.created_ms = next.Int(3);
    seq = next.Int(4);
    lease = std::move(candidate);
  }
  if (!lease) return std::nullopt;
  Statement images(db_, "SELECT images FROM jobs WHERE seq = ?");
  images.Bind(seq);
  if (images.Step() && !images.IsNull(0)) lease->spec.MergeFromString(images.Text(0));
  lease->lease_id = RandomId("lease-");
  if (Transition(Edge::kLease, "id = :id", lease->job_id, {"", lease->lease_id, group_id}) != 1) {
    vidgen::Fail(ErrorCode::kInternal, "job '{}' left the queue while it was leased", lease->job_id);
  }
  transaction.Commit();
  events_.QueueChanged();
  return lease;
}

void JobStore::CheckLease(const std::string& job_id, const std::string& lease_id) {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT 1 FROM jobs WHERE id = ? AND lease_id = ? AND state = ?");
  row.Bind(job_id).Bind(lease_id).Bind(static_cast<int>(JobState::kRunning));
  if (!row.Step()) vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}'", job_id, lease_id);
}

v1::HeartbeatResponse JobStore::Heartbeat(const v1::HeartbeatRequest& request) {
  if (std::find(kStages.begin(), kStages.end(), request.stage()) == kStages.end()) {
    vidgen::Fail(ErrorCode::kInvalidArgument, "heartbeat stage '{}' is not one of {}", request.stage().substr(0, 40),
                 fmt::join(kStages, ", "));
  }
  if (request.total_steps() < 0 || request.total_steps() > 100'000 || request.step() < 0 ||
      request.step() > request.total_steps()) {
    vidgen::Fail(ErrorCode::kInvalidArgument, "heartbeat step {} of {} is out of range", request.step(),
                 request.total_steps());
  }
  if (!std::isfinite(request.eta_seconds()) || request.eta_seconds() < 0) {
    vidgen::Fail(ErrorCode::kInvalidArgument, "heartbeat eta_seconds {} is not a duration", request.eta_seconds());
  }
  v1::HeartbeatResponse response;
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  Statement(db_,
            "UPDATE jobs SET stage = ?, step = ?, total_steps = ?, eta_seconds = ?, lease_expires_ms = ? "
            "WHERE id = ? AND lease_id = ? AND state = ?")
      .Bind(request.stage())
      .Bind(request.step())
      .Bind(request.total_steps())
      .Bind(request.eta_seconds())
      .Bind(clock_.NowMs() + limits_.lease.count())
      .Bind(request.job_id())
      .Bind(request.lease_id())
      .Bind(static_cast<int>(JobState::kRunning))
      .Run();
  if (db_.Changes() == 0) {
    response.set_lease_lost(true);
    return response;
  }
  Statement cancel(db_, "SELECT cancel_requested FROM jobs WHERE id = ?");
  cancel.Bind(request.job_id()).Step();
  response.set_cancel(cancel.Int(0) != 0);
  transaction.Commit();
  events_.JobChanged(request.job_id());
  return response;
}

std::optional<std::string> JobStore::AttachArtifact(const std::string& job_id, const std::string& lease_id,
                                                    const StoredArtifact& artifact) {
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  Statement current(db_, "SELECT video_path FROM jobs WHERE id = ? AND lease_id = ? AND state = ?");
  current.Bind(job_id).Bind(lease_id).Bind(static_cast<int>(JobState::kRunning));
  if (!current.Step()) {
    vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}' any more", job_id, lease_id);
  }
  std::optional<std::string> replaced;
  if (!current.IsNull(0) && current.Text(0) != artifact.path) replaced = current.Text(0);
  Statement(db_, "UPDATE jobs SET video_path = ?, video_bytes = ?, video_sha256 = ?, video_mime = ? WHERE id = ?")
      .Bind(artifact.path)
      .Bind(artifact.bytes)
      .Bind(artifact.sha256)
      .Bind(artifact.mime_type)
      .Bind(job_id)
      .Run();
  transaction.Commit();
  events_.JobChanged(job_id);
  return replaced;
}

JobStore::Completed JobStore::Complete(const v1::CompleteJobRequest& request) {
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  const auto message = fmt::format("{} full and {} forecast steps in {:.1f} s", request.full_steps(),
                                   request.predicted_steps(), request.seconds());
  if (Transition(Edge::kComplete, "id = :id AND lease_id = :lease_id AND video_path IS NOT NULL", request.job_id(),
                 {message, request.lease_id(), ""}) == 0) {
    vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}' with its video uploaded",
                 request.job_id(), request.lease_id());
  }
  Statement row(db_, "SELECT model, created_ms FROM jobs WHERE id = ?");
  row.Bind(request.job_id()).Step();
  Completed completed{row.Text(0), row.Int(1)};
  transaction.Commit();
  events_.JobChanged(request.job_id());
  return completed;
}

void JobStore::Fail(const v1::FailJobRequest& request) {
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  Statement row(db_, "SELECT state, attempts, cancel_requested FROM jobs WHERE id = ? AND lease_id = ? AND state = ?");
  row.Bind(request.job_id()).Bind(request.lease_id()).Bind(static_cast<int>(JobState::kRunning));
  if (!row.Step()) {
    vidgen::Fail(ErrorCode::kFailedPrecondition, "job '{}' is not leased by '{}' any more", request.job_id(),
                 request.lease_id());
  }
  const bool cancelled = request.cancelled() || row.Int(2) != 0;
  const bool retry = !cancelled && request.retryable() && row.Int(1) < limits_.max_attempts;
  const Edge edge = cancelled ? Edge::kCancelRunning : retry ? Edge::kRequeue : Edge::kFail;
  RequireEdge(static_cast<JobState>(row.Int(0)), edge);
  const std::string message = cancelled ? "cancelled while running"
                              : retry   ? "requeued: " + request.message().substr(0, 4096)
                                        : request.message().substr(0, 4096);
  Transition(edge, "id = :id AND lease_id = :lease_id", request.job_id(), {message, request.lease_id(), ""});
  transaction.Commit();
  if (retry) events_.QueueChanged();
  events_.JobChanged(request.job_id());
}

int JobStore::ExpireLeases() {
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  // Each lapsed job takes exactly one of the three edges: the first that matches.
  constexpr const char* kLapsed = "lease_expires_ms < :now";
  int changed = Transition(Edge::kCancelRunning, "lease_expires_ms < :now AND cancel_requested = 1", "",
                           {"cancelled; its worker group stopped answering", "", ""});
  Statement exhausted(db_,
                      "UPDATE jobs SET message = 'its worker group stopped answering ' || attempts || ' times' "
                      "WHERE state = ? AND lease_expires_ms < ? AND attempts >= ?");
  exhausted.Bind(static_cast<int>(JobState::kRunning)).Bind(clock_.NowMs()).Bind(limits_.max_attempts).Run();
  changed += Transition(Edge::kFail, fmt::format("{} AND attempts >= {}", kLapsed, limits_.max_attempts), "", {});
  changed += Transition(Edge::kRequeue, kLapsed, "", {"requeued: its worker group stopped answering", "", ""});
  transaction.Commit();
  if (changed > 0) events_.QueueChanged();  // wakes every watcher: the lapsed jobs' too
  return changed;
}

std::vector<std::string> JobStore::ExpireArtifacts(std::int64_t cutoff_ms) {
  std::vector<std::string> paths;
  std::lock_guard lock(mutex_);
  Database::Transaction transaction(db_);
  Statement rows(db_,
                 "SELECT video_path FROM jobs WHERE video_path IS NOT NULL AND finished_ms > 0 AND finished_ms < ?");
  rows.Bind(cutoff_ms);
  while (rows.Step()) paths.push_back(rows.Text(0));
  Statement(db_,
            "UPDATE jobs SET video_path = NULL WHERE video_path IS NOT NULL AND finished_ms > 0 AND finished_ms < ?")
      .Bind(cutoff_ms)
      .Run();
  transaction.Commit();
  return paths;
}

}  // namespace vidgen::server
