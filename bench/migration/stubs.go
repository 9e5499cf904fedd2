package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/activities/contract"
)

// stubs stand in for activities/openstack: each returns at once an output shaped
// as the real one's, so that the benchmark measures the workflows and Temporal,
// not a cloud. They are registered under the contract's names, which is how the
// workflows call them.
type stubs struct {
	// vmsPerProject says how many servers MigratePreflight finds in a project.
	vmsPerProject map[string]int
	// calls counts every activity run; deleted the sources deleted, i.e. VMs
	// migrated.
	calls, deleted atomic.Int64
}

func (s *stubs) register(w worker.Registry) {
	for name, fn := range map[string]any{
		contract.MigratePreflight.Name:    s.preflight,
		contract.MigrateStopSource.Name:   s.stopSource,
		contract.MigrateSnapshot.Name:     s.snapshot,
		contract.MigrateCopyImage.Name:    s.copyImage,
		contract.MigrateCreateServer.Name: s.createServer,
		contract.MigrateWaitActive.Name:   s.waitActive,
		contract.MigrateVerify.Name:       s.verify,
		contract.MigrateSwitchDNS.Name:    s.step,
		contract.MigrateMark.Name:         s.step,
		contract.MigrateDeleteSource.Name: s.deleteSource,
		contract.MigrationNotify.Name:     s.notify,
	} {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

func serverID(project string, i int) string { return fmt.Sprintf("%s-src-%04d", project, i) }

func (s *stubs) preflight(_ context.Context, in contract.PreflightInput) (contract.ProjectPlan, error) {
	s.calls.Add(1)
	n, ok := s.vmsPerProject[in.Project]
	if !ok {
		return contract.ProjectPlan{}, fmt.Errorf("project %q is not one of the benchmark's", in.Project)
	}
	p := contract.ProjectPlan{Project: in.Project, From: in.From, To: in.To, DryRun: in.DryRun,
		Resources: []contract.ResourceAction{{Kind: "flavor", Name: "g3.cores1.ram2.disk20", Action: contract.ResourceExists}}}
	for i := range n {
		p.Servers = append(p.Servers, contract.ServerPlan{
			ID: serverID(in.Project, i), Name: fmt.Sprintf("vm-%04d", i), Status: "ACTIVE",
			Flavor: "g3.cores1.ram2.disk20", State: contract.ServerToMigrate,
			Metadata: map[string]string{"owner": in.Project},
		})
	}
	return p, nil
}

func (s *stubs) stopSource(context.Context, contract.VMRef) (contract.StopSourceOutput, error) {
	s.calls.Add(1)
	return contract.StopSourceOutput{Status: "SHUTOFF"}, nil
}

func image(id string) contract.ImageOutput {
	return contract.ImageOutput{ImageID: id, Checksum: "9e107d9d372bb6826bd81d3542a419d6", HashAlgo: "sha512",
		HashValue: "07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb642e93a252a954f23912547d1e8a3b5ed6e1bfd7097821233fa0538f3db854fee6", Size: 41126400}
}

func (s *stubs) snapshot(_ context.Context, vm contract.VMRef) (contract.ImageOutput, error) {
	s.calls.Add(1)
	return image(vm.ServerID + "-snap"), nil
}

func (s *stubs) copyImage(_ context.Context, in contract.CopyImageInput) (contract.ImageOutput, error) {
	s.calls.Add(1)
	out := image(in.Source.ImageID + "-copy")
	out.Checksum, out.HashAlgo, out.HashValue, out.Size = in.Source.Checksum, in.Source.HashAlgo, in.Source.HashValue, in.Source.Size
	return out, nil
}

func (s *stubs) createServer(_ context.Context, in contract.CreateServerInput) (contract.ServerOutput, error) {
	s.calls.Add(1)
	return contract.ServerOutput{ServerID: in.VM.ServerID + "-dst", Status: "BUILD"}, nil
}

func (s *stubs) waitActive(_ context.Context, in contract.DestinationInput) (contract.ServerOutput, error) {
	s.calls.Add(1)
	return contract.ServerOutput{ServerID: in.ServerID, Status: "ACTIVE"}, nil
}

func (s *stubs) verify(context.Context, contract.DestinationInput) (contract.VerifyOutput, error) {
	s.calls.Add(1)
	return contract.VerifyOutput{}, nil
}

func (s *stubs) step(_ context.Context, in contract.DestinationInput) (contract.StepOutput, error) {
	s.calls.Add(1)
	return contract.StepOutput{Detail: "done for " + in.VM.ServerName}, nil
}

func (s *stubs) notify(context.Context, contract.MigrationNotifyInput) error {
	s.calls.Add(1)
	return nil
}

func (s *stubs) deleteSource(ctx context.Context, in contract.DestinationInput) (contract.StepOutput, error) {
	s.deleted.Add(1)
	return s.step(ctx, in)
}
