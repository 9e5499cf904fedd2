package contract

// Activities of the base image check (changes.BaseImageCheck).
var (
	// ResolveBaseImages reads, for each target branch, the base images its
	// pipeline's variants build on (the Blubber config's base, per stage).
	ResolveBaseImages = Activity[ResolveBaseImagesInput, ResolveBaseImagesOutput]{Name: "ResolveBaseImages"}
	// ImageDigests asks the registry for the current digest of each image.
	ImageDigests = Activity[ImageDigestsInput, ImageDigestsOutput]{Name: "ImageDigests"}
)

// BaseTarget is one branch of one project whose images are rebuilt when a base
// image changes.
type BaseTarget struct {
	Project string `json:"project"`
	Repo    string `json:"repo"`
	// Branch is the short branch name, e.g. "main".
	Branch string `json:"branch"`
}

// ResolveBaseImagesInput lists the targets to read.
type ResolveBaseImagesInput struct {
	Targets []BaseTarget `json:"targets"`
}

// TargetBases is one target's base images, sorted, or why they could not be read.
type TargetBases struct {
	Target BaseTarget `json:"target"`
	// Commit is the branch head that was read.
	Commit string   `json:"commit,omitempty"`
	Images []string `json:"images,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// ResolveBaseImagesOutput has one entry per target, in the input's order.
type ResolveBaseImagesOutput struct {
	Targets []TargetBases `json:"targets"`
}

// ImageDigestsInput lists image references (repository:tag).
type ImageDigestsInput struct {
	Images []string `json:"images"`
}

// ImageDigest is one image's current manifest digest, or why it is unknown.
type ImageDigest struct {
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ImageDigestsOutput has one entry per image, in the input's order.
type ImageDigestsOutput struct {
	Digests []ImageDigest `json:"digests"`
}
