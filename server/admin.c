/*
** Connection and server commands: PING, ECHO, SELECT, QUIT, CLIENT, INFO,
** CONFIG, COMMAND, and tinkv's own COMPACT.  They answer enough of what
** redis-cli, redis-benchmark and common client libraries ask at connect
** time; see the README for how each differs from Redis.
*/
#include "cmd.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glob.h"
#include "objenc.h"

/*
** Redis's reply to a bad subcommand of cmd: for a known subcommand (one of
** the NULL-terminated `known`) with the wrong number of arguments, "wrong
** number of arguments for 'cmd|sub' command"; for any other, "unknown
** subcommand 'sub'. Try CMD HELP.".
*/
static void reply_bad_subcommand(session *s, const char *cmd,
                                 const resp_arg *sub,
                                 const char *const *known) {
  for (size_t i = 0; known[i]; i++) {
    if (arg_is(sub, known[i])) {
      resp_error(s->out, "ERR wrong number of arguments for '%s|%s' command",
                 cmd, known[i]);
      return;
    }
  }
  char up[32];
  size_t n = strlen(cmd);
  if (n > sizeof up - 1) n = sizeof up - 1;
  for (size_t i = 0; i < n; i++)
    up[i] = (char)(cmd[i] >= 'a' && cmd[i] <= 'z' ? cmd[i] - 32 : cmd[i]);
  up[n] = '\0';
  resp_error(s->out, "ERR unknown subcommand '%.*s'. Try %s HELP.",
             (int)(sub->len < 128 ? sub->len : 128), sub->ptr, up);
}

/* PING [message]: +PONG, or the message as a bulk string. */
void ping_command(session *s, size_t argc, const resp_arg *argv) {
  if (argc > 2) {
    resp_error(s->out, "ERR wrong number of arguments for 'ping' command");
    return;
  }
  if (argc == 2) resp_bulk(s->out, argv[1].ptr, argv[1].len);
  else resp_status(s->out, "PONG");
}

/* ECHO message. */
void echo_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  resp_bulk(s->out, argv[1].ptr, argv[1].len);
}

/* There is one database, 0. */
void select_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long db;
  if (resp_str2ll(argv[1].ptr, argv[1].len, &db) != 0) reply_not_integer(s);
  else if (db != 0) resp_error(s->out, "ERR DB index is out of range");
  else resp_status(s->out, "OK");
}

static int valid_name(const resp_arg *a);

/* HELLO [2 [SETNAME name]]: the connection's properties, in RESP2 (the
** only protocol tinkv speaks: HELLO 3 gets Redis's NOPROTO error, and a
** client then stays on RESP2). */
void hello_command(session *s, size_t argc, const resp_arg *argv) {
  if (argc >= 2) {
    long long ver;
    if (resp_str2ll(argv[1].ptr, argv[1].len, &ver) != 0) {
      resp_error(s->out, "ERR Protocol version is not an integer or out of "
                 "range");
      return;
    }
    if (ver != 2) {
      resp_error(s->out, "NOPROTO sorry, this protocol version is not "
                 "supported.");
      return;
    }
  }
  const resp_arg *name = NULL;
  for (size_t i = 2; i < argc; i++) {
    if (arg_is(&argv[i], "setname") && i + 1 < argc) {
      name = &argv[++i];
    } else {
      resp_error(s->out, "ERR Syntax error in HELLO option '%.*s'",
                 (int)(argv[i].len < 64 ? argv[i].len : 64), argv[i].ptr);
      return;
    }
  }
  if (name) {
    if (!valid_name(name)) {
      resp_error(s->out, "ERR Client names cannot contain spaces, newlines "
                 "or special characters.");
      return;
    }
    char *copy = name->len ? malloc(name->len + 1) : NULL;
    if (name->len && !copy) {
      resp_error(s->out, "ERR out of memory");
      return;
    }
    if (copy) {
      memcpy(copy, name->ptr, name->len);
      copy[name->len] = '\0';
    }
    free(s->name);
    s->name = copy;
  }
  resp_array(s->out, 14);
  resp_bulkstr(s->out, "server");
  resp_bulkstr(s->out, "redis");
  resp_bulkstr(s->out, "version");
  resp_bulkstr(s->out, "7.0.0");
  resp_bulkstr(s->out, "proto");
  resp_int(s->out, 2);
  resp_bulkstr(s->out, "id");
  resp_int(s->out, (long long)s->id);
  resp_bulkstr(s->out, "mode");
  resp_bulkstr(s->out, "standalone");
  resp_bulkstr(s->out, "role");
  resp_bulkstr(s->out, "master");
  resp_bulkstr(s->out, "modules");
  resp_array(s->out, 0);
}

/* QUIT: +OK, then the connection closes once the reply is sent. */
void quit_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  resp_status(s->out, "OK");
  s->close_after_reply = 1;
}

/* SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: stop the server cleanly (every
** write is in the store already; SAVE and NOSAVE change nothing).  As in
** Redis the client gets no reply: its connection closes. */
void shutdown_command(session *s, size_t argc, const resp_arg *argv) {
  for (size_t i = 1; i < argc; i++) {
    if (arg_is(&argv[i], "abort")) {
      resp_error(s->out, "ERR No shutdown in progress.");
      return;
    }
    if (!arg_is(&argv[i], "nosave") && !arg_is(&argv[i], "save") &&
        !arg_is(&argv[i], "now") && !arg_is(&argv[i], "force")) {
      reply_syntax_error(s);
      return;
    }
  }
  if (cmd_shutdown() != 0) {
    resp_error(s->out, "ERR Errors trying to SHUTDOWN. Check logs.");
    return;
  }
  srv_log("SHUTDOWN asked by client %llu", (unsigned long long)s->id);
  s->close_after_reply = 1;
}

/* COMPACT (tinkv's own): compact now; the reply is the bytes reclaimed.
** The batch was committed first (CMD_NO_TXN): compaction needs no open
** transaction.  Logged with its duration (store_compact_now). */
void compact_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  char who[64];
  uint64_t reclaimed = 0;
  snprintf(who, sizeof who, "COMPACT from client %llu",
           (unsigned long long)s->id);
  int rc = store_compact_now(who, &reclaimed);
  if (rc != TKV_OK) reply_engine_error(s, rc);
  else resp_int(s->out, (long long)reclaimed);
}

/* BACKUP name [INCREMENTAL] (tinkv's own): back the store up online into
** --backup-dir/name; the reply is what was done, as the JSON object of
** SQL's tinkv_backup().  Runs on the event loop: clients wait meanwhile
** (the copy is hard links on the same file system, else file copies). */
void backup_command(session *s, size_t argc, const resp_arg *argv) {
  int incremental = 0;
  if (argc == 3 && arg_is(&argv[2], "incremental")) incremental = 1;
  else if (argc != 2) {
    reply_syntax_error(s);
    return;
  }
  char dest[4096], who[64];
  const char *why = store_backup_path(argv[1].ptr, argv[1].len, dest,
                                      sizeof dest);
  if (why) {
    resp_error(s->out, "ERR %s", why);
    return;
  }
  snprintf(who, sizeof who, "BACKUP from client %llu",
           (unsigned long long)s->id);
  tkv_backup_report r;
  int rc = store_backup(who, dest, incremental, &r);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  char *json;
  rc = tkv_backup_json(&r, &json);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  resp_bulkstr(s->out, json);
  tkv_free(json);
}

/* Collects CHECK's problems, one "FILE: offset N: why" line each. */
static void check_problem(void *ctx, const char *file, uint64_t offset,
                          const char *why) {
  buf *b = ctx;
  buf_printf(b, "%s: offset %llu: %s\n", file, (unsigned long long)offset,
             why);
}

/* CHECK (tinkv's own): check every record and hint of the store (as of
** the last commit) while it is used; "ok", or an error listing the
** problems as tinkvctl check prints them.  Logged with its duration. */
void check_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  char who[64];
  buf b = {0};
  tkv_check_report r;
  snprintf(who, sizeof who, "CHECK from client %llu",
           (unsigned long long)s->id);
  int rc = store_check(who, check_problem, &b, &r);
  if (rc == TKV_OK) {
    resp_status(s->out, "OK");
  } else if (rc == TKV_CORRUPT) {
    for (size_t i = 0; i < b.len; i++)      /* one line for RESP */
      if (b.data[i] == '\n' || b.data[i] == '\r') b.data[i] = ';';
    resp_error(s->out, "ERR check found %llu problem%s: %.*s",
               (unsigned long long)r.problems, r.problems == 1 ? "" : "s",
               (int)(b.len < 4000 ? b.len : 4000), b.data ? b.data : "");
  } else {
    reply_engine_error(s, rc);
  }
  buf_free(&b);
}

/* ------------------------------------------------------------ CLIENT. */

/* Redis accepts names of printable characters without spaces. */
static int valid_name(const resp_arg *a) {
  for (size_t i = 0; i < a->len; i++)
    if (a->ptr[i] < '!' || a->ptr[i] > '~') return 0;
  return 1;
}

/* CLIENT SETNAME/GETNAME/ID/SETINFO/LIST. */
void client_command(session *s, size_t argc, const resp_arg *argv) {
  const resp_arg *sub = &argv[1];
  if (arg_is(sub, "setname") && argc == 3) {
    if (!valid_name(&argv[2])) {
      resp_error(s->out, "ERR Client names cannot contain spaces, newlines "
                 "or special characters.");
      return;
    }
    char *name = NULL;
    if (argv[2].len) {
      name = malloc(argv[2].len + 1);
      if (!name) {
        resp_error(s->out, "ERR out of memory");
        return;
      }
      memcpy(name, argv[2].ptr, argv[2].len);
      name[argv[2].len] = '\0';
    }
    free(s->name);
    s->name = name;
    resp_status(s->out, "OK");
  } else if (arg_is(sub, "getname") && argc == 2) {
    if (s->name) resp_bulkstr(s->out, s->name);
    else resp_nil(s->out);
  } else if (arg_is(sub, "id") && argc == 2) {
    resp_int(s->out, (long long)s->id);
  } else if (arg_is(sub, "setinfo") && argc == 4) {
    resp_status(s->out, "OK");          /* library name/version: ignored */
  } else if (arg_is(sub, "list") && argc == 2) {
    buf list = {0};
    list.limit = srv.cfg.max_output;
    cmd_client_list(&list);
    if (list.failed) resp_error(s->out, "ERR out of memory");
    else resp_bulk(s->out, list.data ? list.data : "", list.len);
    buf_free(&list);
  } else {
    static const char *const known[] = {"setname", "getname", "id", "setinfo",
                                        "list", NULL};
    reply_bad_subcommand(s, "client", sub, known);
  }
}

/* -------------------------------------------------------------- INFO. */

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, rss = 0;
  if (!f) return 0;
  if (fscanf(f, "%lu %lu", &size, &rss) != 2) rss = 0;
  fclose(f);
  return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* Nonzero if INFO was asked for this section (or for all of them). */
static int want_section(size_t argc, const resp_arg *argv, const char *name) {
  if (argc < 2) return 1;
  for (size_t i = 1; i < argc; i++)
    if (arg_is(&argv[i], name) || arg_is(&argv[i], "all") ||
        arg_is(&argv[i], "default") || arg_is(&argv[i], "everything"))
      return 1;
  return 0;
}

/* INFO [section ...]: Redis's sections that make sense here, plus
** "tinkv" with the engine's statistics. */
void info_command(session *s, size_t argc, const resp_arg *argv) {
  buf b = {0};
  time_t now = time(NULL);
  tkv_stats st;
  int rc = tkv_stats_get(store_db(), &st);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  if (want_section(argc, argv, "server"))
    buf_printf(&b, "# Server\r\nredis_version:7.0.0\r\ntinkv_version:%s\r\n"
               "redis_mode:standalone\r\narch_bits:%d\r\nprocess_id:%ld\r\n"
               "tcp_port:%d\r\nhttp_port:%d\r\nuptime_in_seconds:%lld\r\n"
               "uptime_in_days:%lld\r\n\r\n",
               tkv_version(), (int)(sizeof(void *) * 8), (long)getpid(),
               srv.resp_port, srv.http_port,
               (long long)(now - srv.start_time),
               (long long)(now - srv.start_time) / 86400);
  if (want_section(argc, argv, "clients"))
    buf_printf(&b, "# Clients\r\nconnected_clients:%ld\r\nmaxclients:%ld\r\n"
               "blocked_clients:0\r\n\r\n", srv.clients, srv.cfg.max_clients);
  if (want_section(argc, argv, "memory")) {
    struct mallinfo2 mi = mallinfo2();
    buf_printf(&b, "# Memory\r\nused_memory:%zu\r\nused_memory_rss:%zu\r\n"
               "keydir_bytes:%llu\r\nencoding_notes:%zu\r\n\r\n",
               mi.uordblks + mi.hblkhd, rss_bytes(),
               (unsigned long long)st.keydir_bytes, objenc_count());
  }
  if (want_section(argc, argv, "persistence"))
    buf_printf(&b, "# Persistence\r\nsync:%s\r\ngroup_commit:%s\r\n"
               "fsync_interval:%u\r\ncompact_min:%llu\r\ndir:%s\r\n\r\n",
               srv_sync_name(srv.cfg.sync), srv.cfg.group_commit ? "yes" : "no",
               srv.cfg.fsync_interval, (unsigned long long)srv.cfg.compact_min,
               srv.cfg.dir);
  if (want_section(argc, argv, "stats"))
    buf_printf(&b, "# Stats\r\ntotal_connections_received:%llu\r\n"
               "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
               "protocol_errors:%llu\r\ngroup_commits:%llu\r\n"
               "group_commit_writes:%llu\r\ngroup_syncs:%llu\r\n"
               "group_sync_usec:%llu\r\nexpired_keys:%llu\r\n"
               "http_requests:%llu\r\n\r\n",
               (unsigned long long)srv.connections_total,
               (unsigned long long)srv.commands_total,
               (unsigned long long)srv.rejected_connections,
               (unsigned long long)srv.protocol_errors,
               (unsigned long long)srv.group_commits,
               (unsigned long long)srv.group_commit_writes,
               (unsigned long long)srv.group_syncs,
               (unsigned long long)srv.group_sync_usec,
               (unsigned long long)srv.expired_keys,
               (unsigned long long)srv.http_requests);
  if (want_section(argc, argv, "tinkv"))
    buf_printf(&b, "# Tinkv\r\nkeys:%llu\r\nlive_bytes:%llu\r\n"
               "stale_bytes:%llu\r\nfiles:%llu\r\ndisk_bytes:%llu\r\n"
               "compactions:%llu\r\nlast_reclaimed:%llu\r\n"
               "keydir_bytes:%llu\r\ncompact_threshold:%llu\r\n"
               "last_compact_rc:%d\r\nmerges:%llu\r\n"
               "merge_bytes_copied:%llu\r\nmerge_bytes_reclaimed:%llu\r\n"
               "merge_usec:%llu\r\nmerge_damaged:%llu\r\n"
               "dead_ratio:%.4f\r\nwrite_amp:%.3f\r\n\r\n",
               (unsigned long long)st.keys, (unsigned long long)st.live_bytes,
               (unsigned long long)st.stale_bytes,
               (unsigned long long)st.files, (unsigned long long)st.disk_bytes,
               (unsigned long long)st.compactions,
               (unsigned long long)st.last_reclaimed,
               (unsigned long long)st.keydir_bytes,
               (unsigned long long)st.compact_threshold, st.last_compact_rc,
               (unsigned long long)st.merges,
               (unsigned long long)st.merge_bytes_copied,
               (unsigned long long)st.merge_bytes_reclaimed,
               (unsigned long long)st.merge_usec,
               (unsigned long long)st.merge_damaged, st.dead_ratio,
               st.write_amp);
  if (want_section(argc, argv, "keyspace"))
    buf_printf(&b, "# Keyspace\r\ndb0:keys=%llu,expires=%llu,avg_ttl=0\r\n",
               (unsigned long long)tkv_count_stored(store_db()),
               (unsigned long long)st.expires);
  if (b.failed) resp_error(s->out, "ERR out of memory");
  else resp_bulk(s->out, b.data ? b.data : "", b.len);
  buf_free(&b);
}

/* ------------------------------------------------------------ CONFIG. */

/* Redis's name for the durability of --sync: "always" (full), "everysec"
** (normal with a periodic fdatasync: a process crash loses nothing, a
** power loss up to the interval), "no" (normal without one).  At --sync off
** a process crash can lose acknowledged writes, which no appendfsync
** value allows, so the answer is "off", not a Redis value. */
static const char *appendfsync(void) {
  switch (srv.cfg.sync) {
  case TKV_SYNC_FULL: return "always";
  case TKV_SYNC_NORMAL: return srv.cfg.fsync_interval ? "everysec" : "no";
  default: return "off";
  }
}

/* The parameters CONFIG GET knows, as Redis names them where Redis has
** the same knob.  Values are formatted into `val` (64 bytes). */
static const char *config_value(int i, char *val) {
  switch (i) {
  case 0: snprintf(val, 64, "%d", srv.resp_port); return "port";
  case 1: snprintf(val, 64, "%s", srv.cfg.bind); return "bind";
  case 2: snprintf(val, 64, "%ld", srv.cfg.max_clients); return "maxclients";
  case 3: snprintf(val, 64, "%zu", srv.cfg.max_value);
          return "proto-max-bulk-len";
  case 4: snprintf(val, 64, "%u", srv.cfg.timeout); return "timeout";
  case 5: snprintf(val, 64, "1"); return "databases";
  case 6: snprintf(val, 64, "%s", ""); return "save";
  case 7: snprintf(val, 64, "yes"); return "appendonly";
  case 8: snprintf(val, 64, "%s", appendfsync());
          return "appendfsync";
  case 9: snprintf(val, 64, "0"); return "maxmemory";
  case 10: snprintf(val, 64, "%s", srv_sync_name(srv.cfg.sync));
           return "tinkv-sync";
  case 11: snprintf(val, 64, "%s", srv.cfg.group_commit ? "yes" : "no");
           return "tinkv-group-commit";
  case 12: snprintf(val, 64, "%d", srv.http_port); return "tinkv-http-port";
  case 13: snprintf(val, 64, "%llu", (unsigned long long)srv.cfg.compact_min);
           return "tinkv-compact-min";
  default: return NULL;
  }
}

/* CONFIG GET pattern...: the read-only parameters of config_value().
** CONFIG SET is refused: options are fixed at start-up. */
void config_command(session *s, size_t argc, const resp_arg *argv) {
  const resp_arg *sub = &argv[1];
  if (arg_is(sub, "get") && argc >= 3) {
    char val[64];
    size_t mark = s->out->len;
    long long n = 0;
    const char *name;
    for (int i = 0; (name = config_value(i, val)) != NULL; i++) {
      for (size_t j = 2; j < argc; j++) {
        if (glob_match(argv[j].ptr, argv[j].len, name, strlen(name), 1)) {
          resp_bulkstr(s->out, name);
          resp_bulkstr(s->out, i == 1 ? srv.cfg.bind : val);
          n += 2;
          break;
        }
      }
    }
    resp_array_at(s->out, mark, n);
  } else if (arg_is(sub, "set") && argc >= 4) {
    resp_error(s->out, "ERR CONFIG SET is not supported: restart "
               "tinkv-server with the option changed");
  } else if (arg_is(sub, "resetstat") && argc == 2) {
    srv.commands_total = srv.connections_total = 0;
    srv.rejected_connections = srv.protocol_errors = 0;
    srv.group_commits = srv.group_commit_writes = srv.http_requests = 0;
    srv.group_syncs = srv.group_sync_usec = 0;
    resp_status(s->out, "OK");
  } else {
    static const char *const known[] = {"get", "set", "resetstat", NULL};
    reply_bad_subcommand(s, "config", sub, known);
  }
}

/* ----------------------------------------------------------- COMMAND. */

/* One entry of COMMAND / COMMAND INFO, in Redis 7's ten-field shape. */
static void command_entry(buf *out, const command *c) {
  resp_array(out, 10);
  resp_bulkstr(out, c->name);
  resp_int(out, c->arity);
  int nflags = !!(c->flags & CMD_WRITE) + !!(c->flags & CMD_READONLY) +
               !!(c->flags & CMD_FAST) + !!(c->flags & CMD_NO_MULTI);
  resp_array(out, nflags);
  if (c->flags & CMD_WRITE) resp_status(out, "write");
  if (c->flags & CMD_READONLY) resp_status(out, "readonly");
  if (c->flags & CMD_FAST) resp_status(out, "fast");
  if (c->flags & CMD_NO_MULTI) resp_status(out, "no_multi");
  resp_int(out, c->first_key);
  resp_int(out, c->last_key);
  resp_int(out, c->key_step);
  for (int i = 0; i < 4; i++) resp_array(out, 0);  /* acl, tips, keys, subs */
}

/* COMMAND, COMMAND COUNT/LIST/INFO.  COMMAND DOCS is an unknown
** subcommand on purpose: redis-cli then falls back to its built-in help. */
void command_command(session *s, size_t argc, const resp_arg *argv) {
  if (argc == 1) {
    resp_array(s->out, (long long)cmd_count);
    for (size_t i = 0; i < cmd_count; i++) command_entry(s->out, &cmd_table[i]);
  } else if (arg_is(&argv[1], "count") && argc == 2) {
    resp_int(s->out, (long long)cmd_count);
  } else if (arg_is(&argv[1], "list") && argc == 2) {
    resp_array(s->out, (long long)cmd_count);
    for (size_t i = 0; i < cmd_count; i++)
      resp_bulkstr(s->out, cmd_table[i].name);
  } else if (arg_is(&argv[1], "info") && argc == 2) {   /* all, as Redis 7 */
    resp_array(s->out, (long long)cmd_count);
    for (size_t i = 0; i < cmd_count; i++) command_entry(s->out, &cmd_table[i]);
  } else if (arg_is(&argv[1], "info")) {
    resp_array(s->out, (long long)(argc - 2));
    for (size_t i = 2; i < argc; i++) {
      const command *c = cmd_lookup(argv[i].ptr, argv[i].len);
      if (c) command_entry(s->out, c);
      else resp_array(s->out, -1);
    }
  } else {                    /* DOCS too: redis-cli then uses its own */
    static const char *const known[] = {"count", "list", "info", NULL};
    reply_bad_subcommand(s, "command", &argv[1], known);
  }
}
