// power_loss_shim: an LD_PRELOAD library that models what a power loss leaves of one directory.
//
// It watches every write, truncate, create, rename and unlink under $TALLY_PL_DIR (an absolute
// path) and every fsync/fdatasync. It keeps, per file (inode), the content as of its last sync and,
// per directory, the entries as of its last sync; everything else is "in the page cache" and is
// what a power loss takes away. Files present when the process starts count as synced.
//
// When $TALLY_PL_CTL/snap appears (its content: a target directory), the shim stops all watched
// I/O, writes the synced image of the directory into the target (SQLite -shm files are left out:
// SQLite rebuilds them), writes $TALLY_PL_CTL/done and kills the process with SIGKILL: the power
// went off. A process started on the target sees exactly what the disk would hold.
//
// Model: data reaches disk only through fsync/fdatasync of its file; an entry (create, rename,
// unlink, mkdir) only through fsync/fdatasync of its directory. Stricter than ext4, which is the
// point. Only absolute paths are watched (the collector and SQLite use them).
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum { kMaxFds = 65536, kMaxFiles = 4096, kMaxEntries = 4096 };

typedef struct Op {
  int trunc;  // 1: truncate to off; 0: write len bytes at off
  uint64_t off, len;
  char* data;
  struct Op* next;
} Op;

typedef struct {
  ino_t ino;
  char* synced;  // content as of the last sync
  uint64_t synced_len, synced_cap;
  Op *head, *tail;  // writes since, in order
  uint64_t pending;
} File;

typedef struct {
  char* path;  // relative to the watched root ("" is the root itself)
  ino_t ino;
  int is_dir;
} Entry;

typedef struct NsOp {
  int kind;  // 0 create/mkdir, 1 unlink/rmdir, 2 rename
  char* dir;
  char *a, *b;
  ino_t ino;
  int is_dir;
  struct NsOp* next;
} NsOp;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char root[4096];
static size_t root_len;
static char ctl[4096];
static int active;
// fd -> watched file index + 1 (file) or -(entry path index + 1) (directory); 0 not watched.
static int fd_kind[kMaxFds];  // written under mu; read without it on the write path: atomics
static int kind_of(int fd) {
  return __atomic_load_n(&fd_kind[fd], __ATOMIC_RELAXED);
}
static void set_kind(int fd, int kind) {
  __atomic_store_n(&fd_kind[fd], kind, __ATOMIC_RELAXED);
}
static char* fd_dir[kMaxFds];
static File files[kMaxFiles];
static int nfiles;
static Entry durable[kMaxEntries];  // the directory tree as the disk holds it
static int ndurable;
static NsOp *ns_head, *ns_tail;
static uint64_t ns_count;

#define REAL(name, ret, ...)                                 \
  static ret (*real_##name)(__VA_ARGS__);                    \
  static void load_##name(void) {                            \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name); \
  }
REAL(open, int, const char*, int, ...)
REAL(open64, int, const char*, int, ...)
REAL(openat, int, int, const char*, int, ...)
REAL(openat64, int, int, const char*, int, ...)
REAL(close, int, int)
REAL(write, ssize_t, int, const void*, size_t)
REAL(pwrite, ssize_t, int, const void*, size_t, off_t)
REAL(pwrite64, ssize_t, int, const void*, size_t, off_t)
REAL(ftruncate, int, int, off_t)
REAL(ftruncate64, int, int, off_t)
REAL(truncate, int, const char*, off_t)
REAL(truncate64, int, const char*, off_t)
REAL(fsync, int, int)
REAL(fdatasync, int, int)
REAL(unlink, int, const char*)
REAL(rename, int, const char*, const char*)
REAL(mkdir, int, const char*, mode_t)
REAL(rmdir, int, const char*)

static const char* rel(const char* path) {
  if (!active || !path || path[0] != '/') return NULL;
  if (strncmp(path, root, root_len) != 0) return NULL;
  if (path[root_len] == 0) return "";
  if (path[root_len] != '/') return NULL;
  return path + root_len + 1;
}

static char* parent_of(const char* r) {
  const char* slash = strrchr(r, '/');
  return strndup(r, slash ? (size_t)(slash - r) : 0);
}

static File* file_of(ino_t ino, int create) {
  for (int i = 0; i < nfiles; ++i)
    if (files[i].ino == ino) return &files[i];
  if (!create || nfiles == kMaxFiles) return NULL;
  File* f = &files[nfiles++];
  memset(f, 0, sizeof *f);
  f->ino = ino;
  return f;
}

static void apply_op(File* f, Op* op) {
  if (op->trunc) {
    if (op->off > f->synced_cap) {
      f->synced = realloc(f->synced, op->off);
      f->synced_cap = op->off;
    }
    if (op->off > f->synced_len) memset(f->synced + f->synced_len, 0, op->off - f->synced_len);
    f->synced_len = op->off;
    return;
  }
  uint64_t end = op->off + op->len;
  if (end > f->synced_cap) {
    uint64_t cap = f->synced_cap ? f->synced_cap : 4096;
    while (cap < end) cap *= 2;
    f->synced = realloc(f->synced, cap);
    f->synced_cap = cap;
  }
  if (op->off > f->synced_len) memset(f->synced + f->synced_len, 0, op->off - f->synced_len);
  memcpy(f->synced + op->off, op->data, op->len);
  if (end > f->synced_len) f->synced_len = end;
}

static void add_op(File* f, int trunc, uint64_t off, const void* data, uint64_t len) {
  Op* op = calloc(1, sizeof *op);
  op->trunc = trunc;
  op->off = off;
  op->len = len;
  if (!trunc) {
    op->data = malloc(len ? len : 1);
    memcpy(op->data, data, len);
  }
  if (f->tail)
    f->tail->next = op;
  else
    f->head = op;
  f->tail = op;
  ++f->pending;
}

static void sync_file(File* f, uint64_t upto) {
  while (upto-- && f->head) {
    Op* op = f->head;
    apply_op(f, op);
    f->head = op->next;
    if (!f->head) f->tail = NULL;
    --f->pending;
    free(op->data);
    free(op);
  }
}

static int find_entry(const char* path) {
  for (int i = 0; i < ndurable; ++i)
    if (strcmp(durable[i].path, path) == 0) return i;
  return -1;
}

static void drop_entry(int i) {
  free(durable[i].path);
  durable[i] = durable[--ndurable];
}

static void add_ns(int kind, const char* dir, const char* a, const char* b, ino_t ino, int is_dir) {
  NsOp* op = calloc(1, sizeof *op);
  op->kind = kind;
  op->dir = strdup(dir);
  op->a = strdup(a);
  op->b = b ? strdup(b) : NULL;
  op->ino = ino;
  op->is_dir = is_dir;
  if (ns_tail)
    ns_tail->next = op;
  else
    ns_head = op;
  ns_tail = op;
  ++ns_count;
}

// Applies the first `upto` namespace operations that belong to directory `dir`.
static void sync_dir(const char* dir, uint64_t upto) {
  NsOp **link = &ns_head, *prev = NULL;
  for (uint64_t n = 0; n < upto && *link; ++n) {
    NsOp* op = *link;
    if (strcmp(op->dir, dir) != 0) {
      prev = op;
      link = &op->next;
      continue;
    }
    if (op->kind == 0) {
      int i = find_entry(op->a);
      if (i >= 0) drop_entry(i);
      if (ndurable < kMaxEntries) durable[ndurable++] = (Entry){strdup(op->a), op->ino, op->is_dir};
    } else if (op->kind == 1) {
      int i = find_entry(op->a);
      if (i >= 0) drop_entry(i);
    } else {
      int i = find_entry(op->b);
      if (i >= 0) drop_entry(i);
      i = find_entry(op->a);
      if (i >= 0) {
        free(durable[i].path);
        durable[i].path = strdup(op->b);
      }
    }
    *link = op->next;
    if (ns_tail == op) ns_tail = prev;
    --ns_count;
    free(op->dir);
    free(op->a);
    free(op->b);
    free(op);
  }
}

static void load_existing(const char* r) {
  char full[8192];
  snprintf(full, sizeof full, "%s%s%s", root, *r ? "/" : "", r);
  DIR* d = opendir(full);
  if (!d) return;
  struct dirent* e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char child[8192], path[16384];
    snprintf(child, sizeof child, "%s%s%s", r, *r ? "/" : "", e->d_name);
    snprintf(path, sizeof path, "%s/%s", root, child);
    struct stat st;
    if (stat(path, &st) != 0) continue;
    if (ndurable < kMaxEntries)
      durable[ndurable++] = (Entry){strdup(child), st.st_ino, S_ISDIR(st.st_mode)};
    if (S_ISDIR(st.st_mode)) {
      load_existing(child);
      continue;
    }
    File* f = file_of(st.st_ino, 1);
    FILE* in = fopen(path, "rb");
    if (!f || !in) continue;
    f->synced = malloc((size_t)st.st_size + 1);
    f->synced_len = fread(f->synced, 1, (size_t)st.st_size, in);
    f->synced_cap = (uint64_t)st.st_size + 1;
    fclose(in);
  }
  closedir(d);
}

static void materialize(const char* target) {
  load_mkdir();
  load_open();
  load_write();
  load_close();
  real_mkdir(target, 0755);
  // Directories first (parents sort before children).
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < ndurable; ++i) {
      const Entry* e = &durable[i];
      if (e->is_dir != (pass == 0)) continue;
      char path[8192];
      snprintf(path, sizeof path, "%s/%s", target, e->path);
      if (e->is_dir) {
        real_mkdir(path, 0755);
        continue;
      }
      size_t n = strlen(e->path);
      if (n > 4 && strcmp(e->path + n - 4, "-shm") == 0) continue;
      File* f = file_of(e->ino, 0);
      int fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) continue;
      uint64_t done = 0;
      while (f && done < f->synced_len) {
        ssize_t w = real_write(fd, f->synced + done, f->synced_len - done);
        if (w <= 0) break;
        done += (uint64_t)w;
      }
      real_close(fd);
    }
  }
}

static void* watcher(void* arg) {
  (void)arg;
  char snap[8192], done[8192], tmp[8192];
  snprintf(snap, sizeof snap, "%s/snap", ctl);
  snprintf(done, sizeof done, "%s/done", ctl);
  snprintf(tmp, sizeof tmp, "%s/done.tmp", ctl);
  for (;;) {
    FILE* in = fopen(snap, "r");
    if (!in) {
      struct timespec ts = {0, 2 * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    char target[4096] = {0};
    if (!fgets(target, sizeof target, in)) target[0] = 0;
    fclose(in);
    target[strcspn(target, "\n")] = 0;
    pthread_mutex_lock(&mu);  // held until the end: no watched I/O happens after the snapshot
    materialize(target);
    FILE* out = fopen(tmp, "w");
    if (out) {
      fprintf(out, "files=%d pending_namespace_ops=%llu\n", nfiles, (unsigned long long)ns_count);
      fclose(out);
    }
    rename(tmp, done);
    kill(getpid(), SIGKILL);
  }
  return NULL;
}

// Every real_* pointer is looked up here, while the process has one thread: later calls only read
// them (a lazy lookup on first use raced between the collector's threads).
static void load_all(void) {
  load_open();
  load_open64();
  load_openat();
  load_openat64();
  load_close();
  load_write();
  load_pwrite();
  load_pwrite64();
  load_ftruncate();
  load_ftruncate64();
  load_truncate();
  load_truncate64();
  load_fsync();
  load_fdatasync();
  load_unlink();
  load_rename();
  load_mkdir();
  load_rmdir();
}

__attribute__((constructor)) static void init(void) {
  load_all();
  const char* r = getenv("TALLY_PL_DIR");
  const char* c = getenv("TALLY_PL_CTL");
  if (!r || !c || r[0] != '/') return;
  snprintf(root, sizeof root, "%s", r);
  root_len = strlen(root);
  while (root_len > 1 && root[root_len - 1] == '/') root[--root_len] = 0;
  snprintf(ctl, sizeof ctl, "%s", c);
  load_existing("");
  active = 1;
  pthread_t t;
  pthread_create(&t, NULL, watcher, NULL);
  pthread_detach(t);
}

// --- bookkeeping after the real call succeeded ---

// A new file can get the inode number of one deleted earlier. On disk that deleted file is still
// there while its unlink is not synced, with its own content; the new file starts empty. So the
// record kept under that number (its synced content, its durable and pending entries, the fds
// still open on it) moves to a number no real file has, and the new file gets a fresh record.
// Without this, the new file's image was the old file's content with the new writes laid over
// it: a log segment created on a reused inode showed the old segment's bytes after its end.
static ino_t next_detached = (ino_t)-2;
static void detach_inode(ino_t ino) {
  File* old = file_of(ino, 0);
  if (!old) return;
  const ino_t fake = next_detached--;
  old->ino = fake;
  for (int i = 0; i < ndurable; ++i)
    if (!durable[i].is_dir && durable[i].ino == ino) durable[i].ino = fake;
  for (NsOp* op = ns_head; op; op = op->next)
    if (op->kind == 0 && !op->is_dir && op->ino == ino) op->ino = fake;
}

static void after_open(int fd, const char* path, int existed) {
  const char* r = rel(path);
  if (fd < 0 || fd >= kMaxFds || !r) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  pthread_mutex_lock(&mu);
  if (S_ISDIR(st.st_mode)) {
    set_kind(fd, -1);
    free(fd_dir[fd]);
    fd_dir[fd] = strdup(r);
  } else {
    if (!existed) detach_inode(st.st_ino);
    File* f = file_of(st.st_ino, 1);
    set_kind(fd, f ? (int)(f - files) + 1 : 0);
    if (!existed) {
      char* dir = parent_of(r);
      add_ns(0, dir, r, NULL, st.st_ino, 0);
      free(dir);
    }
  }
  pthread_mutex_unlock(&mu);
}

static int do_open(int (*fn)(const char*, int, ...), const char* path, int flags, mode_t mode) {
  const char* r = rel(path);
  int existed = 1;
  if (r && (flags & O_CREAT)) {
    struct stat st;
    existed = stat(path, &st) == 0;
  }
  int fd = fn(path, flags, mode);
  if (r) after_open(fd, path, existed);
  return fd;
}

#define MODE_ARG                       \
  mode_t mode = 0;                     \
  if (flags & (O_CREAT | O_TMPFILE)) { \
    va_list ap;                        \
    va_start(ap, flags);               \
    mode = (mode_t)va_arg(ap, int);    \
    va_end(ap);                        \
  }

int open(const char* path, int flags, ...) {
  MODE_ARG
  load_open();
  return do_open(real_open, path, flags, mode);
}
int open64(const char* path, int flags, ...) {
  MODE_ARG
  load_open64();
  return do_open(real_open64, path, flags, mode);
}
int openat(int dirfd, const char* path, int flags, ...) {
  MODE_ARG
  load_openat();
  if (path[0] == '/') {
    load_open();
    return do_open(real_open, path, flags, mode);
  }
  return real_openat(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char* path, int flags, ...) {
  MODE_ARG
  load_openat64();
  if (path[0] == '/') {
    load_open64();
    return do_open(real_open64, path, flags, mode);
  }
  return real_openat64(dirfd, path, flags, mode);
}

int close(int fd) {
  load_close();
  if (fd >= 0 && fd < kMaxFds && kind_of(fd)) {
    pthread_mutex_lock(&mu);
    set_kind(fd, 0);
    free(fd_dir[fd]);
    fd_dir[fd] = NULL;
    pthread_mutex_unlock(&mu);
  }
  return real_close(fd);
}

static void record_write(int fd, uint64_t off, const void* buf, ssize_t n) {
  if (n <= 0) return;
  pthread_mutex_lock(&mu);
  if (fd_kind[fd] > 0) add_op(&files[fd_kind[fd] - 1], 0, off, buf, (uint64_t)n);
  pthread_mutex_unlock(&mu);
}

ssize_t write(int fd, const void* buf, size_t count) {
  load_write();
  if (fd < 0 || fd >= kMaxFds || kind_of(fd) <= 0) return real_write(fd, buf, count);
  ssize_t n = real_write(fd, buf, count);
  if (n > 0) {
    off_t end = lseek(fd, 0, SEEK_CUR);
    record_write(fd, (uint64_t)end - (uint64_t)n, buf, n);
  }
  return n;
}
ssize_t pwrite(int fd, const void* buf, size_t count, off_t off) {
  load_pwrite();
  ssize_t n = real_pwrite(fd, buf, count, off);
  if (fd >= 0 && fd < kMaxFds && kind_of(fd) > 0) record_write(fd, (uint64_t)off, buf, n);
  return n;
}
ssize_t pwrite64(int fd, const void* buf, size_t count, off_t off) {
  load_pwrite64();
  ssize_t n = real_pwrite64(fd, buf, count, off);
  if (fd >= 0 && fd < kMaxFds && kind_of(fd) > 0) record_write(fd, (uint64_t)off, buf, n);
  return n;
}

static void record_trunc_fd(int fd, off_t len) {
  pthread_mutex_lock(&mu);
  if (fd_kind[fd] > 0) add_op(&files[fd_kind[fd] - 1], 1, (uint64_t)len, NULL, 0);
  pthread_mutex_unlock(&mu);
}
int ftruncate(int fd, off_t len) {
  load_ftruncate();
  int rc = real_ftruncate(fd, len);
  if (rc == 0 && fd >= 0 && fd < kMaxFds && kind_of(fd) > 0) record_trunc_fd(fd, len);
  return rc;
}
int ftruncate64(int fd, off_t len) {
  load_ftruncate64();
  int rc = real_ftruncate64(fd, len);
  if (rc == 0 && fd >= 0 && fd < kMaxFds && kind_of(fd) > 0) record_trunc_fd(fd, len);
  return rc;
}
static void record_trunc_path(const char* path, off_t len) {
  if (!rel(path)) return;
  struct stat st;
  if (stat(path, &st) != 0) return;
  pthread_mutex_lock(&mu);
  File* f = file_of(st.st_ino, 1);
  if (f) add_op(f, 1, (uint64_t)len, NULL, 0);
  pthread_mutex_unlock(&mu);
}
int truncate(const char* path, off_t len) {
  load_truncate();
  int rc = real_truncate(path, len);
  if (rc == 0) record_trunc_path(path, len);
  return rc;
}
int truncate64(const char* path, off_t len) {
  load_truncate64();
  int rc = real_truncate64(path, len);
  if (rc == 0) record_trunc_path(path, len);
  return rc;
}

static int do_sync(int (*fn)(int), int fd) {
  if (fd < 0 || fd >= kMaxFds || !kind_of(fd)) return fn(fd);
  pthread_mutex_lock(&mu);
  const int kind = fd_kind[fd];
  char* dir = kind < 0 && fd_dir[fd] ? strdup(fd_dir[fd]) : NULL;
  // Only what was written before the sync started is made durable by it.
  const uint64_t upto = kind > 0 ? files[kind - 1].pending : ns_count;
  pthread_mutex_unlock(&mu);
  int rc = fn(fd);
  if (rc == 0) {
    pthread_mutex_lock(&mu);
    if (kind > 0)
      sync_file(&files[kind - 1], upto);
    else if (dir)
      sync_dir(dir, upto);
    pthread_mutex_unlock(&mu);
  }
  free(dir);
  return rc;
}
int fsync(int fd) {
  load_fsync();
  return do_sync(real_fsync, fd);
}
int fdatasync(int fd) {
  load_fdatasync();
  return do_sync(real_fdatasync, fd);
}

static void record_ns(int kind, const char* a, const char* b, int is_dir, ino_t ino) {
  const char* ra = rel(a);
  const char* rb = b ? rel(b) : NULL;
  if (!ra || (b && !rb)) return;
  pthread_mutex_lock(&mu);
  char* dir = parent_of(ra);
  add_ns(kind, dir, ra, rb, ino, is_dir);
  free(dir);
  pthread_mutex_unlock(&mu);
}
int unlink(const char* path) {
  load_unlink();
  int rc = real_unlink(path);
  if (rc == 0) record_ns(1, path, NULL, 0, 0);
  return rc;
}
int rmdir(const char* path) {
  load_rmdir();
  int rc = real_rmdir(path);
  if (rc == 0) record_ns(1, path, NULL, 1, 0);
  return rc;
}
int rename(const char* from, const char* to) {
  load_rename();
  int rc = real_rename(from, to);
  if (rc == 0) record_ns(2, from, to, 0, 0);
  return rc;
}
int mkdir(const char* path, mode_t mode) {
  load_mkdir();
  int rc = real_mkdir(path, mode);
  if (rc == 0 && rel(path)) {
    struct stat st;
    if (stat(path, &st) == 0) record_ns(0, path, NULL, 1, st.st_ino);
  }
  return rc;
}
