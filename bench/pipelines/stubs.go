package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/workflows"
)

// The registry the stubs pretend to push to, and the Service URL the isolated
// deploys pretend to answer at.
const (
	stubRegistry   = "localhost:5000"
	stubServiceURL = "http://10.96.0.42:8080"
)

// stubSettings are the pipeline settings PrepareSource returns: examples/hello's.
func stubSettings(image string) contract.Settings {
	return contract.Settings{
		Blubber: ".pipeline/blubber.yaml", TestVariant: "test", ProductionVariant: "production",
		Image: image, ServicePort: 8080,
		Values: map[string]any{"containerPort": 8080, "service": map[string]any{"port": 8080}},
		E2E: []contract.Check{
			{Name: "greets", Path: "/cgi-bin/hello?name=bench", ExpectStatus: 200, ExpectBodyContains: "hello, bench"},
			{Name: "healthy", Path: "/cgi-bin/healthz", ExpectStatus: 200},
		},
	}
}

// stubCommit is the commit a repository's ref resolves to: a hash of both, so
// that a pipeline's result can be checked against its input.
func stubCommit(repo, ref string) string {
	sum := sha256.Sum256([]byte(repo + "\x00" + ref))
	return hex.EncodeToString(sum[:20])
}

// stubDigest is the digest of the image pushed to push from commit.
func stubDigest(push, commit string) string {
	sum := sha256.Sum256([]byte(push + "\x00" + commit))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// stubImage is the image a repository's settings name: its last path element.
func stubImage(repo string) string {
	return repo[strings.LastIndexByte(repo, '/')+1:]
}

// buildStubs stand in for the build pool's activities of the pipeline
// (activities/source, buildkit, registry), deployStubs for the deploy pool's
// (activities/helm): each returns at once an output shaped as the real one's, so
// that the benchmark measures the workflow and Temporal, not BuildKit and a
// cluster. They are registered under the contract's names, the names the
// workflow's commands carry, on the pool whose queue the workflow sends them to.
var (
	buildStubs = map[string]any{
		contract.PrepareSource.Name: func(_ context.Context, in contract.PrepareSourceInput) (contract.PrepareSourceOutput, error) {
			return contract.PrepareSourceOutput{
				Source:   contract.Source{Repo: in.Repo, Commit: stubCommit(in.Repo, in.Ref)},
				Settings: stubSettings(stubImage(in.Repo)), Variants: []string{"build", "test", "production"},
			}, nil
		},
		contract.BuildVariant.Name: func(_ context.Context, in contract.BuildVariantInput) (contract.BuildVariantOutput, error) {
			if in.Push == "" {
				return contract.BuildVariantOutput{}, nil
			}
			repo, _, _ := strings.Cut(in.Push, ":")
			d := stubDigest(in.Push, in.Source.Commit)
			return contract.BuildVariantOutput{Digest: d, Ref: stubRegistry + "/" + repo + "@" + d}, nil
		},
		contract.RunTests.Name: func(context.Context, contract.RunTestsInput) (contract.RunTestsOutput, error) {
			return contract.RunTestsOutput{Output: "ok  \thello\t0.012s\n"}, nil
		},
		contract.PublishImage.Name: func(_ context.Context, in contract.PublishImageInput) (contract.PublishImageOutput, error) {
			out := contract.PublishImageOutput{Digest: in.From[strings.LastIndexByte(in.From, '@')+1:]}
			for _, t := range in.Tags {
				out.Refs = append(out.Refs, stubRegistry+"/"+in.Repository+":"+t)
			}
			return out, nil
		},
	}
	deployStubs = map[string]any{
		contract.DeployCandidate.Name: func(context.Context, contract.DeployCandidateInput) (contract.DeployCandidateOutput, error) {
			return contract.DeployCandidateOutput{ServiceURL: stubServiceURL, Revision: 1}, nil
		},
		contract.HelmTest.Name: func(context.Context, contract.HelmTestInput) error { return nil },
		contract.RunE2E.Name: func(_ context.Context, in contract.RunE2EInput) (contract.RunE2EOutput, error) {
			var out contract.RunE2EOutput
			for _, c := range in.Checks {
				out.Results = append(out.Results, contract.CheckResult{Name: c.Name, OK: true, Detail: "200 from " + in.BaseURL + c.Path})
			}
			return out, nil
		},
		contract.Teardown.Name: func(context.Context, contract.TeardownInput) error { return nil },
	}
	stubsOf = map[string]map[string]any{workflows.PoolBuild: buildStubs, workflows.PoolDeploy: deployStubs}
)

// benchPools are the pools the pipeline's workflow and activities run on.
var benchPools = []string{workflows.PoolBuild, workflows.PoolDeploy}

// registerStubs registers pool's stubs under the contract's names.
func registerStubs(w worker.Registry, pool string) {
	for name, fn := range stubsOf[pool] {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}
