package blubber

import (
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/moby/buildkit/client/llb"
)

// step compiles one step of a plan onto the stage.
func (cp *compiler) step(s *stageState, step Step) error {
	epoch := cp.opts.epoch
	switch st := step.(type) {
	case *UserStep:
		s.uid, s.gid = st.UID, st.GID
		s.state = s.state.User(fmt.Sprintf("%d:%d", st.UID, st.GID))
		s.setenv("HOME", st.Home)
	case *WorkdirStep:
		s.dir = st.Path
		s.state = s.state.File(llb.Mkdir(st.Path, 0o755, llb.WithParents(true), llb.WithUIDGID(s.uid, s.gid),
			llb.WithCreatedTime(epoch)), llb.WithCustomName("WORKDIR "+st.Path)).Dir(st.Path)
	case *ArgStep:
		for _, v := range st.Vars {
			if given, ok := cp.opts.buildArgs[v.Name]; ok {
				v.Value = given
			}
			s.args = append(s.args, v)
		}
	case *EnvStep:
		for _, v := range st.Vars {
			s.setenv(v.Name, os.Expand(v.Value, s.getenv))
		}
	case *FileStep:
		s.state = s.state.File(llb.Mkdir(path.Dir(st.Path), 0o755, llb.WithParents(true), llb.WithCreatedTime(epoch)).
			Mkfile(st.Path, os.FileMode(st.Mode), []byte(st.Content), llb.WithCreatedTime(epoch)),
			llb.WithCustomName("write "+st.Path))
	case *CopyStep:
		from, err := cp.source(st.From)
		if err != nil {
			return err
		}
		chown := llb.ChownOpt{User: &llb.UserOpt{UID: st.UID}, Group: &llb.UserOpt{UID: st.GID}}
		var fa *llb.FileAction
		for _, src := range st.Sources {
			if st.From.Kind == FromContext {
				src = path.Join("/", src)
			}
			info := &llb.CopyInfo{
				CopyDirContentsOnly: true, FollowSymlinks: true, AllowWildcard: true, CreateDestPath: true,
				ExcludePatterns: st.Exclude, ChownOpt: &chown, CreatedTime: &epoch,
			}
			if fa == nil {
				fa = llb.Copy(from, src, st.Dest, info)
			} else {
				fa = fa.Copy(from, src, st.Dest, info)
			}
		}
		s.state = s.state.File(fa, llb.WithCustomName(copyName(st)))
	case *RunStep:
		return cp.run(s, st)
	default:
		return fmt.Errorf("unknown step %T", step)
	}
	return nil
}

func copyName(st *CopyStep) string {
	from := "context"
	if st.From.Kind != FromContext {
		from = st.From.Name
	}
	return fmt.Sprintf("COPY from %s %s to %s", from, strings.Join(st.Sources, " "), st.Dest)
}

func (cp *compiler) source(src Source) (llb.State, error) {
	switch src.Kind {
	case FromContext:
		return cp.local, nil
	case FromStage:
		st, ok := cp.stages[src.Name]
		if !ok {
			return llb.State{}, fmt.Errorf("variant %q is not compiled yet", src.Name)
		}
		return st.state, nil
	}
	return llb.Image(src.Name, llb.Platform(cp.opts.platform)), nil
}

func (cp *compiler) run(s *stageState, st *RunStep) error {
	opts := []llb.RunOption{llb.WithCustomName(st.Name)}
	for _, a := range s.args {
		opts = append(opts, llb.AddEnv(a.Name, a.Value))
	}
	switch {
	case st.Script != "":
		script := llb.Scratch().File(llb.Mkfile("/script", 0o755, []byte(st.Script), llb.WithCreatedTime(cp.opts.epoch)))
		opts = append(opts, llb.AddMount("/run/blubber", script, llb.Readonly), llb.Args([]string{"/run/blubber/script"}))
	case st.Shell != "":
		opts = append(opts, llb.Args([]string{"/bin/sh", "-c", st.Shell}))
	default:
		opts = append(opts, llb.Args(st.Args))
	}
	for _, m := range st.Mounts {
		from, err := cp.source(m.From)
		if err != nil {
			return err
		}
		opts = append(opts, llb.AddMount(m.Target, from, llb.SourcePath(m.Source), llb.ForceNoOutput))
	}
	for _, c := range st.Caches {
		target := os.Expand(c.Target, s.getenv)
		if target == "" || strings.Contains(target, "$") {
			return fmt.Errorf("cache destination %q expands to %q; set the variables it uses in runs.environment", c.Target, target)
		}
		target = inDir(s.dir, target)
		owned := llb.Scratch().File(llb.Mkdir("/cache", 0o755, llb.WithUIDGID(c.UID, c.GID), llb.WithCreatedTime(cp.opts.epoch)))
		sharing := map[string]llb.CacheMountSharingMode{
			"shared": llb.CacheMountShared, "private": llb.CacheMountPrivate, "locked": llb.CacheMountLocked,
		}[c.Sharing]
		id := os.Expand(c.ID, s.getenv)
		if cp.opts.cacheScope != "" {
			id = cp.opts.cacheScope + "/" + id
		}
		opts = append(opts, llb.AddMount(target, owned, llb.SourcePath("/cache"), llb.AsPersistentCacheDir(id, sharing)))
	}
	s.state = s.state.Run(opts...).Root()
	return nil
}
