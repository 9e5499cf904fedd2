package blubber

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/client/llb"
)

// TestVertexPrefix starts the name of the build step that runs a variant's
// entrypoint, so that progress output and errors can tell it apart.
const TestVertexPrefix = "blubber test "

// TestState runs the variant's entrypoint (with the base image's CMD when the
// variant sets no entrypoint) as a build step
// on top of the variant's filesystem: as the image's user, in its working
// directory, with its environment. Solving it fails when the command exits
// non-zero; Build then returns a *StepError carrying the command's output. This
// is the pipeline's "run the test image" step. It has no network: a patchset's
// tests must not reach the services around the build (BuildOptions.Egress).
func (c *Compiled) TestState() (llb.State, error) {
	cfg := c.Image.Config
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	variant := c.Plan.Target().Variant
	if len(argv) == 0 {
		return llb.State{}, fmt.Errorf("variant %s has no entrypoint to run; set entrypoint (e.g. [npm, test]) in the Blubber config", variant)
	}
	st := c.State
	for _, kv := range cfg.Env {
		name, value, _ := strings.Cut(kv, "=")
		st = st.AddEnv(name, value)
	}
	if cfg.WorkingDir != "" {
		st = st.Dir(cfg.WorkingDir)
	}
	if cfg.User != "" {
		st = st.User(cfg.User)
	}
	run := st.Run(llb.Args(argv), llb.Network(llb.NetModeNone), llb.WithCustomName(TestVertexPrefix+variant+": "+strings.Join(argv, " ")))
	return run.Root(), nil
}
