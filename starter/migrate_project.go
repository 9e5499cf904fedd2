package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/client/launch"
)

// migrateProjectCommand is pause, resume or retry of one project's automatic
// migration (ProjectMigration).
func migrateProjectCommand(verb string) *cli.Command {
	usage := map[string]string{
		"pause":  "stop starting VM migrations of a project (those running finish)",
		"resume": "start a paused project's VM migrations again",
		"retry":  "migrate a project's failed VMs again, once their cause is fixed",
	}[verb]
	desc := map[string]string{
		"pause": "Sends the pause update to the project's ProjectMigration workflow\n" +
			"(migrate-project/<from>-<to>/<project>): no VM migration starts until resume;\n" +
			"those running go on to their end.",
		"resume": "Sends the resume update to a paused project's ProjectMigration workflow.",
		"retry": "Sends the retry update: the failed VMs (all, or those named with --server) are\n" +
			"queued again. Each rerun finds its earlier work by the markers it left (the\n" +
			"snapshot, the copied image, the destination server) and goes on from there; the\n" +
			"source is still never deleted before the destination is verified.",
	}[verb]
	flags := []cli.Flag{
		&cli.StringFlag{Name: "project", Usage: "the project's `NAME` (Keystone's)"},
		&cli.StringFlag{Name: "by", Usage: "who you are (`NAME`), recorded in the history"},
		&cli.BoolFlag{Name: "dry-run", Usage: "say what would be sent and to which VMs, send nothing"},
	}
	example := "   conveyor migrate " + verb + " --from eqiad1 --to eqiad2 --project tools --by alice"
	switch verb {
	case "retry":
		flags = append(flags, &cli.StringSliceFlag{Name: "server", Usage: "retry only this failed server (`NAME` or id); repeatable", DefaultText: "every failed server"})
		example += "\n   conveyor migrate retry --from eqiad1 --to eqiad2 --project tools --server web-1 --by alice --dry-run"
	default:
		flags = append(flags, &cli.StringFlag{Name: "reason", Usage: "why (`TEXT`), shown in status"})
		if verb == "pause" {
			example += " --reason 'storage maintenance'"
		}
	}
	return &cli.Command{
		Name:        verb,
		Usage:       usage,
		UsageText:   "conveyor migrate " + verb + " --from NAME --to NAME --project NAME --by WHO [--dry-run]",
		Description: desc + " --dry-run sends nothing.\n\nExample:\n\n" + example,
		Flags:       pairCommandFlags(flags...),
		Action: pairAction(func(c *cli.Context, from, to string) error {
			project, by := strings.TrimSpace(c.String("project")), strings.TrimSpace(c.String("by"))
			switch {
			case project == "":
				return errors.New("--project is required: name the project whose migration to " + verb + ", e.g. --project tools")
			case by == "":
				return errors.New("--by is required: say who you are, e.g. --by alice")
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			var arg any = migrations.PauseRequest{By: by, Reason: c.String("reason")}
			if verb == "retry" {
				arg = migrations.RetryRequest{Servers: c.StringSlice("server"), By: by}
			}
			return updateProject(c.Context, cl, c.App.Writer, from, to, project, verb, arg, c.Bool("dry-run"))
		}),
	}
}

// updateProject sends pause, resume or retry to a project's migration.
func updateProject(ctx context.Context, cl client.Client, w io.Writer, from, to, project, verb string, arg any, dryRun bool) error {
	id := migrations.ProjectMigrationID(from, to, project)
	st, err := queryProject(ctx, cl, from, to, project)
	if err != nil {
		return err
	}
	if dryRun {
		b, _ := json.Marshal(arg)
		fmt.Fprintf(w, "dry run: would send %s %s to %s\n", verb, b, id)
		switch {
		case verb == "retry":
			var failed []string
			for _, v := range st.VMs {
				if v.State == migrations.VMFailed && (len(arg.(migrations.RetryRequest).Servers) == 0 ||
					slices.Contains(arg.(migrations.RetryRequest).Servers, v.Name) || slices.Contains(arg.(migrations.RetryRequest).Servers, v.ID)) {
					failed = append(failed, v.Name)
				}
			}
			fmt.Fprintf(w, "it would queue again: %s\n", orDash(strings.Join(failed, ", ")))
		case st.Paused == (verb == "pause"):
			fmt.Fprintf(w, "project %s is already %sd: it would change nothing\n", project, verb)
		default:
			fmt.Fprintf(w, "project %s: %d VMs pending would %s\n", project, st.Count(migrations.VMPending),
				map[string]string{"pause": "wait", "resume": "start again"}[verb])
		}
		return nil
	}
	if verb == "retry" {
		queued, err := update[[]string](ctx, cl, id, verb, "project "+project, arg)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "project %s: queued again: %s\n", project, strings.Join(queued, ", "))
		return nil
	}
	res, err := update[migrations.ProjectStatus](ctx, cl, id, verb, "project "+project, arg)
	if err != nil {
		return err
	}
	state := "running"
	if res.Paused {
		state = "paused (" + res.PausedBy + ")"
	}
	fmt.Fprintf(w, "project %s: %s; %d of %d VMs done\n", project, state, res.Count(migrations.VMDone), len(res.VMs))
	return nil
}

// queryProject asks a project's migration for its progress.
func queryProject(ctx context.Context, cl client.Client, from, to, project string) (migrations.ProjectStatus, error) {
	id := migrations.ProjectMigrationID(from, to, project)
	st, err := launch.Query[migrations.ProjectStatus](ctx, cl, id, "", migrations.QueryProgress)
	if err != nil {
		return st, explainNotFound(err, id, "project "+project+" is not being migrated automatically from "+from+" to "+to+
			" (see the projects of `conveyor migrate status`; start one with `conveyor migrate start --project`)")
	}
	// The project learns a VM's step only at its grace period and its end; the
	// running VM migrations say where they are now.
	for i := range st.VMs {
		vm := &st.VMs[i]
		if vm.State != migrations.VMRunning || vm.Step == migrations.VMStepGrace || vm.WorkflowID == "" {
			continue
		}
		if p, err := launch.Query[migrations.VMProgress](ctx, cl, vm.WorkflowID, "", migrations.QueryVMProgress); err == nil {
			vm.Step, vm.Detail = p.Step, p.Detail
			if p.DestinationID != "" {
				vm.DestinationID = p.DestinationID
			}
		}
	}
	return st, nil
}

// projectView prints a project's migration VM by VM; done says its workflow
// has closed.
func projectView(ctx context.Context, cl client.Client, w io.Writer, from, to, project string, asJSON bool) (bool, error) {
	st, err := queryProject(ctx, cl, from, to, project)
	if err != nil {
		return false, err
	}
	closed, state := workflowClosed(ctx, cl, migrations.ProjectMigrationID(from, to, project))
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return closed, enc.Encode(st)
	}
	renderProjectStatus(w, st)
	if closed {
		fmt.Fprintf(w, "\nthe project's workflow is %s\n", state)
	}
	return closed, nil
}

// renderProjectStatus prints the VMs of a project's migration.
func renderProjectStatus(w io.Writer, st migrations.ProjectStatus) {
	fmt.Fprintf(w, "project %s: %s → %s (%s)", st.Project, st.From, st.To, migrations.ProjectMigrationID(st.From, st.To, st.Project))
	if st.DryRun {
		fmt.Fprint(w, ", dry run")
	}
	if st.Paused {
		fmt.Fprintf(w, ", PAUSED by %s", st.PausedBy)
	}
	fmt.Fprintln(w)
	done, failed := st.Count(migrations.VMDone), st.Count(migrations.VMFailed)
	fmt.Fprintf(w, "progress %s %d/%d VMs done, %d running, %d pending, %d failed\n\n", bar(done, len(st.VMs), 30),
		done, len(st.VMs), st.Count(migrations.VMRunning), st.Count(migrations.VMPending), failed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tID\tSTATE\tSTEP\tDESTINATION\tRUNS\tDETAIL")
	for _, v := range st.VMs {
		detail := v.Detail
		if v.Error != "" {
			detail = v.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Name, v.ID, v.State, orDash(v.Step), orDash(v.DestinationID), v.Runs, firstLine(detail))
	}
	_ = tw.Flush()
	if failed > 0 {
		fmt.Fprintf(w, "\nfix the cause, then: conveyor migrate retry --from %s --to %s --project %s --by WHO\n", st.From, st.To, shellQuote(st.Project))
	}
}

// maxProjectsShown bounds the projects the migration's status lists one by one.
const maxProjectsShown = 20

// renderProjects prints the per-project progress of the migration's project
// tasks (stage 4's driver): counts by state, then the projects not done yet.
func renderProjects(w io.Writer, st migrations.MigrationStatus) {
	for _, s := range st.Stages {
		for _, t := range s.Tasks {
			if len(t.Projects) == 0 {
				continue
			}
			renderProjectList(w, st.From, st.To, s.Name+" / "+t.Name, t.Projects)
		}
	}
}

// renderProjectList prints a projects driver's projects: a bar, counts by
// state and the projects that are not done (the first maxProjectsShown).
func renderProjectList(w io.Writer, from, to, title string, ps []migrations.ProjectProgress) {
	counts := map[migrations.ProjectState]int{}
	for _, p := range ps {
		counts[p.State]++
	}
	var parts []string
	for _, s := range []migrations.ProjectState{migrations.ProjectDone, migrations.ProjectRunning, migrations.ProjectWaiting,
		migrations.ProjectPending, migrations.ProjectFailed, migrations.ProjectPlanned} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(w, "\nprojects of %s: %s\n", title, strings.Join(parts, ", "))
	fmt.Fprintf(w, "progress %s %d/%d projects done\n", bar(counts[migrations.ProjectDone], len(ps), 30), counts[migrations.ProjectDone], len(ps))
	open := slices.DeleteFunc(slices.Clone(ps), func(p migrations.ProjectProgress) bool { return p.State == migrations.ProjectDone })
	if len(open) == 0 {
		return
	}
	// Failed and overdue projects need a person: show them first.
	slices.SortStableFunc(open, func(a, b migrations.ProjectProgress) int { return urgency(a) - urgency(b) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tMODE\tSTATE\tDEADLINE\tDETAIL")
	for i, p := range open {
		if i == maxProjectsShown {
			fmt.Fprintf(tw, "... and %d more\t\t\t\t\n", len(open)-i)
			break
		}
		state := string(p.State)
		if p.Overdue {
			state += " OVERDUE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Mode, state, day(p.Deadline), firstLine(p.Detail))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "VM by VM: conveyor migrate status --from %s --to %s --project NAME\n", from, to)
}

func urgency(p migrations.ProjectProgress) int {
	switch {
	case p.State == migrations.ProjectFailed:
		return 0
	case p.Overdue:
		return 1
	case p.State == migrations.ProjectRunning:
		return 2
	}
	return 3
}

// startProjects starts the automatic migration of projects outside the stage-4
// driver, or with dryRun asks the clouds what it would do.
func startProjects(c *cli.Context, from, to string, projects []string) error {
	in := migrations.ProjectMigrationInput{From: from, To: to, Servers: c.StringSlice("server"),
		MaxParallel: c.Int("max-parallel"), GracePeriod: c.Duration("grace-period")}
	if in.MaxParallel < 0 || in.GracePeriod < 0 {
		return errors.New("--max-parallel and --grace-period must not be negative")
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("dry-run") {
		fmt.Fprintf(c.App.Writer, "dry run: nothing changes; asking %s and %s (read only)\n", from, to)
		for _, p := range projects {
			plan, err := openstack.PlanProject(c.Context, cfg.OpenStack, contract.PreflightInput{Project: p, From: from, To: to, Servers: in.Servers})
			if err != nil {
				return fmt.Errorf("planning project %s: %w", p, err)
			}
			renderProjectPlan(c.App.Writer, plan)
		}
		return nil
	}
	_, cl, err := dialFromCLI(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	for _, p := range projects {
		in.Project = p
		id := migrations.ProjectMigrationID(from, to, p)
		run, err := launch.ProjectMigration(c.Context, cl, in)
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return fmt.Errorf("project %s is already being migrated (%s): see `conveyor migrate status --from %s --to %s --project %s`", p, id, from, to, p)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "started %s (run %s)\n  follow it: conveyor migrate status --from %s --to %s --project %s --watch\n",
			id, run.GetRunID(), from, to, shellQuote(p))
	}
	return nil
}

// renderProjectPlan prints what migrating a project would do.
func renderProjectPlan(w io.Writer, p contract.ProjectPlan) {
	fmt.Fprintf(w, "\nproject %s: %s → %s, would run as workflow %s\n", p.Project, p.From, p.To, migrations.ProjectMigrationID(p.From, p.To, p.Project))
	fmt.Fprintf(w, "resources the destination %s needs:\n", p.To)
	if len(p.Resources) == 0 {
		fmt.Fprintln(w, "   none")
	}
	for _, r := range p.Resources {
		line := fmt.Sprintf("   %-15s %-28s %s", r.Kind, r.Name, r.Action)
		if r.Detail != "" {
			line += " — " + r.Detail
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "servers (%d):\n", len(p.Servers))
	for _, s := range p.Servers {
		fmt.Fprintf(w, "   %s (%s) %s, flavor %s: %s\n", s.Name, s.ID, s.Status, s.Flavor, s.State)
		for _, step := range s.Steps {
			fmt.Fprintf(w, "      - %s\n", step)
		}
	}
}
