// ccproxy: a stand-in for the qcc_plus proxy, for the real-engine tests (tests/realengine).
//
// It follows qcc_plus's start-up sequence and log lines (shared field notes) and takes its
// behaviour from the world: it really parses PROXY_MYSQL_DSN with the real MySQL driver,
// really connects, checks and migrates the schema of table `nodes`, loads the nodes, really
// binds LISTEN_ADDR (default :8001), and serves `/` and `/version`. Any store error ends it
// with one bare log.Fatal line (exit 1). Like qcc_plus it installs no SIGTERM handler: as
// PID 1 the kernel ignores the default action, and Go's runtime then exits with status 2,
// so a plain `docker stop` gives exit 2 with no log line.
//
// Schema migrations are recorded in table schema_migrations: a recorded migration is not
// re-run (so a column dropped later gives Error 1054 when the nodes are loaded), and an
// unrecorded one runs the ALTER blindly (a column added by hand gives Error 1060).
//
// Knobs that are part of the code, not of a scenario (environment):
//   DB_PING_INTERVAL        period of the store's keep-alive ping (default 30s)
//   HEALTH_CHECK_FIRST_DELAY first health check after start (default 30s)
//   HEALTH_CHECK_CLI_MB     memory each claude CLI health check holds (0 = checks are cheap);
//                           with the CLI hanging, checks pile up every HEALTH_CHECK_INTERVAL
//   HEALTH_CHECK_INTERVAL   period of pile-up checks (default 5m0s)
//   HEALTH_CHECK_PANIC=1    the v1.9.5 scheduler bug: a nil node dereference in the first check
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Set at build time with -ldflags -X.
var (
	Version   = "v1.9.4"
	GitCommit = "unknown"
	BuildDate = "unknown"
)

const migrationID = "20251201_nodes_health_check_model"

const healthCheckModelDDL = "ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) DEFAULT 'claude-haiku-4-5-20251001'"

type node struct {
	ID, Name, BaseURL, APIKey, Protocol, Method string
	Weight, Enabled, FailedCount                int
	Model, LastError                            string
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func redactDSN(dsn string) string {
	if i := strings.LastIndex(dsn, "@"); i >= 0 {
		return "***" + dsn[i:]
	}
	return dsn
}

func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// migrate runs the schema migrations not yet recorded in schema_migrations (the v1.9
// health_check_model column), then the config->settings data migration. Every statement
// shares one 5 s deadline, so a metadata lock on `nodes` gives a bare deadline error.
func migrate(db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(64) PRIMARY KEY)"); err != nil {
		return err
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", migrationID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, healthCheckModelDDL); err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_migrations (version) VALUES (?)", migrationID); err != nil {
			return err
		}
	}
	log.Printf("[migration] start config->settings migration")
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS settings (name VARCHAR(64) PRIMARY KEY, value TEXT)"); err != nil {
		return err
	}
	log.Printf("[migration] config->settings migration finished (0 keys moved)")
	return nil
}

// loadNodes reads every node; a NULL in a string column fails the Scan as in qcc_plus.
func loadNodes(db *sql.DB) ([]node, error) {
	q := "SELECT id, name, base_url, api_key, source_protocol, health_check_method, weight, enabled, failed_count, health_check_model, last_error FROM nodes"
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []node
	for rows.Next() {
		var n node
		if err := rows.Scan(&n.ID, &n.Name, &n.BaseURL, &n.APIKey, &n.Protocol, &n.Method, &n.Weight, &n.Enabled, &n.FailedCount, &n.Model, &n.LastError); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func healthScheduler(nodes []node) {
	interval := envDuration("HEALTH_CHECK_INTERVAL", 5*time.Minute)
	cliMB := 0
	fmt.Sscanf(os.Getenv("HEALTH_CHECK_CLI_MB"), "%d", &cliMB)
	log.Printf("[HealthScheduler] start full health checks every %s", interval)
	go func() {
		time.Sleep(envDuration("HEALTH_CHECK_FIRST_DELAY", 30*time.Second))
		var held [][]byte
		for {
			log.Printf("[HealthScheduler] checking all nodes...")
			log.Printf("[HealthScheduler] total nodes to check: %d (concurrency=%d, cli_concurrency=%d)", len(nodes), 4, 4)
			if os.Getenv("HEALTH_CHECK_PANIC") == "1" {
				var byID map[string]*node
				checkNode(byID["missing"])
			}
			if cliMB > 0 {
				// Each claude CLI check hangs and keeps its memory: checks pile up.
				for range nodes {
					b := make([]byte, cliMB<<20)
					for i := 0; i < len(b); i += 4096 {
						b[i] = 1
					}
					held = append(held, b)
				}
			}
			time.Sleep(interval)
		}
	}()
}

func checkNode(n *node) {
	log.Printf("[health] checking node %s (%s)", n.ID, n.BaseURL)
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "proxy" {
		fmt.Fprintln(os.Stderr, "usage: ccproxy proxy")
		os.Exit(64)
	}
	if b, err := os.ReadFile("/app/BUILD_COMMIT"); err == nil {
		GitCommit = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/app/BUILD_DATE"); err == nil {
		BuildDate = strings.TrimSpace(string(b))
	}
	log.Printf("qcc_plus version: %s (commit=%s, built=%s)", Version, GitCommit, BuildDate)
	log.Printf("using health check mode: cli")
	dsn := os.Getenv("PROXY_MYSQL_DSN")
	var nodes []node
	if dsn == "" {
		log.Printf("using SQLite storage: /app/data/proxy.db")
	} else {
		if _, err := mysql.ParseDSN(dsn); err != nil {
			log.Fatal(err)
		}
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			log.Fatal(err)
		}
		db.SetMaxOpenConns(10)
		db.SetMaxIdleConns(5)
		log.Printf("store: mysql pool configured (maxOpen=10, maxIdle=5, connMaxLifetime=0s)")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := db.PingContext(ctx); err != nil {
			log.Fatal(err)
		}
		cancel()
		if err := migrate(db); err != nil {
			log.Fatal(err)
		}
		log.Printf("using MySQL storage: %s", redactDSN(dsn))
		if nodes, err = loadNodes(db); err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				time.Sleep(envDuration("DB_PING_INTERVAL", 30*time.Second))
				if err := db.Ping(); err != nil {
					log.Printf("[store] ping failed: %v", err)
				}
			}
		}()
	}
	healthScheduler(nodes)
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8001"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": Version, "git_commit": GitCommit, "build_date": BuildDate})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>qcc_plus admin</title><div id=app></div>")
	})
	log.Printf("Claude Code proxy listening on %s", addr)
	log.Printf("[auth] default admin account: username=admin password=%s", token(8))
	log.Printf("[auth] default API key: sk-qcc-%s", token(16))
	log.Fatal(http.Serve(ln, mux))
}
