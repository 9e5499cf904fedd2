package triggers

import (
	"path"
	"regexp"
	"slices"

	"github.com/wikimedia/conveyor/workflows/changes"
)

// Project is one enabled project's settings.
type Project struct {
	Name string
	// Repo is where its sources are fetched from.
	Repo string
	// Image is the image the project publishes, and so the service its images
	// promote (changes.PipelineInput.Image): the repository's pipeline.image
	// must be the same. Unset in the file, it is derived from Name as
	// pipeline.image's default is from the repository (pipelineconfig.DefaultImage),
	// so it is never empty and never the repository's to choose.
	Image string
	// Branches are the branches acted on; empty means every branch.
	Branches []string
	// Verify runs the pipeline of new patchsets and rechecks; Report posts the
	// result on the patchset.
	Verify, Report bool
	// PublishOnMerge batches merges into published builds, of PublishBranches
	// only (Publishes).
	PublishOnMerge bool
	// PublishBranches are the branches whose builds may publish: reviewed
	// branches, never one that anyone may push (a self-service sandbox/*).
	PublishBranches []string
	Batch           changes.BatchSettings
	// Nightly are the branches built every night.
	Nightly []string
	// BaseImages rebuilds the Nightly branches, or else the first of Branches
	// (main when there is none), when a base image they build on changes.
	BaseImages bool
	RefUpdated []RefAction

	// webhookSecretFile is projects[].webhookSecretFile; webhookSecret its
	// content, read by LoadFile (Config.ProjectSecrets).
	webhookSecretFile, webhookSecret string
}

// Project returns the settings of an enabled project.
func (c *Config) Project(name string) (*Project, bool) {
	for i := range c.Projects {
		if c.Projects[i].Name == name {
			return &c.Projects[i], true
		}
	}
	return nil, false
}

var imageRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)

// DefaultPublishBranches are the branches whose builds publish unless the triggers
// file's publishBranches says otherwise.
var DefaultPublishBranches = []string{"main", "master"}

// Publishes says whether a build of branch (short name) publishes its image.
func (p *Project) Publishes(branch string) bool {
	return p.PublishOnMerge && slices.Contains(p.PublishBranches, branch)
}

// BranchEnabled says whether events of branch (short name) are acted on.
func (p *Project) BranchEnabled(branch string) bool {
	return branch != "" && (len(p.Branches) == 0 || slices.Contains(p.Branches, branch))
}

// RefAction returns the action of the first rule matching ref (a full ref).
func (p *Project) RefAction(ref string) (string, bool) {
	for _, r := range p.RefUpdated {
		if ok, _ := path.Match(r.Ref, ref); ok {
			return r.Action, true
		}
	}
	return "", false
}

// RebuildBranches are the branches the base image check rebuilds.
func (p *Project) RebuildBranches() []string {
	switch {
	case !p.BaseImages:
		return nil
	case len(p.Nightly) > 0:
		return p.Nightly
	case len(p.Branches) > 0:
		return p.Branches[:1]
	}
	return []string{"main"}
}
