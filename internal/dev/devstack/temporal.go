package devstack

import (
	"context"
	"slices"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/workflows"
)

const (
	temporalAddr   = "127.0.0.1:7233"
	temporalUIAddr = "127.0.0.1:8233"
)

// TemporalDynamicConfig is the dynamic configuration of the dev server, for
// `temporal server start-dev --dynamic-config-value` (values are JSON): the
// local stack's and the migration benchmark's.
var TemporalDynamicConfig = []string{
	// Updates (approve, task-done, pause, ...) and their asynchronous form.
	"frontend.enableUpdateWorkflowExecution=true",
	"frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
	// Activities a workflow task schedules on its own task queue start on the
	// worker that completed it, without a round through matching: a VM
	// migration's steps cost the server a quarter less CPU.
	"system.enableActivityEagerExecution=true",
	// The timer queue reads 1,000 due timers per page, not 100: with thousands of
	// grace periods (and reminders) due close together, 100 let the last ones
	// fire up to 30 s late (bench/migration measures it).
	"history.timerTaskBatchSize=1000",
	// The history service's task queues forget finished tasks every second, not
	// every 30 s: each new task re-splits the tasks still tracked, which took an
	// eighth of the server's CPU under the migration benchmark.
	`history.transferProcessorUpdateAckInterval="1s"`,
	`history.visibilityProcessorUpdateAckInterval="1s"`,
	`history.timerProcessorUpdateAckInterval="1s"`,
}

// TemporalServerFlags are the `temporal server start-dev` flags of conveyor's
// dev servers, the stack's and the migration benchmark's: TemporalDynamicConfig
// and the workflows' search attributes, plus extra dynamic configuration.
func TemporalServerFlags(extra ...string) []string {
	var flags []string
	for _, kv := range append(slices.Clip(TemporalDynamicConfig), extra...) {
		flags = append(flags, "--dynamic-config-value", kv)
	}
	for _, sa := range workflows.SearchAttributes {
		flags = append(flags, "--search-attribute", sa.Flag())
	}
	return flags
}

// temporalComponent is the Temporal CLI's dev server with its Web UI, keeping its
// database in the state directory so histories survive a restart.
func temporalComponent() component {
	return component{
		name:    "temporal",
		tool:    "temporal",
		process: true,
		address: func(*stack) string { return temporalAddr + "  UI http://" + temporalUIAddr },
		timeout: 90 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.mkdirs("temporal"); err != nil {
				return nil, err
			}
			args := []string{"server", "start-dev",
				"--ip", "127.0.0.1", "--port", "7233", "--ui-port", "8233",
				"--db-filename", s.path("temporal", "temporal.db"),
				"--namespace", "default",
				"--log-format", "json", "--log-level", "warn",
				// The UI decrypts payloads through the stack's codec server.
				"--ui-codec-endpoint", CodecEndpoint,
			}
			args = append(args, TemporalServerFlags()...)
			return &process{Name: "temporal", Bin: s.tool("temporal", "temporal"), Args: args}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			if err := frontendHealthy(ctx, temporalAddr); err != nil {
				return err
			}
			return httpOK(ctx, nil, "http://"+temporalUIAddr+"/")
		},
	}
}

// frontendHealthy checks that the Temporal frontend at addr answers CheckHealth.
func frontendHealthy(ctx context.Context, addr string) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// quietLogger keeps the SDK from logging every failed readiness probe.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
