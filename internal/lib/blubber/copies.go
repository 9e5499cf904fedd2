package blubber

import "path"

// copySteps lays out one entry of a variant's copies.
//
//   - `local` copies the whole build context (less .dockerignore) into lives.in.
//   - a bare variant name copies that variant's lives.in into this variant's
//     lives.in, and its LocalLibPrefix to the same place.
//   - the longhand copies source (default: the whole context, or the variant's
//     lives.in) to destination (default: the same path as source); relative
//     sources are taken from the other variant's lives.in, relative destinations
//     are under this variant's lives.in.
func (c *Config) copySteps(cp Copy, lives user, livesIn string) ([]Step, error) {
	own := func(s *CopyStep) *CopyStep {
		s.UID, s.GID = lives.uid, lives.gid
		return s
	}
	if cp.From == LocalContext {
		src := contextPath(cp.Source)
		dest := livesIn
		if !cp.Shorthand {
			dest = requirementDest(Artifact{Source: cp.Source, Destination: cp.Destination}, livesIn)
		}
		return []Step{own(&CopyStep{From: Source{Kind: FromContext}, Sources: []string{src}, Dest: dest, Exclude: cp.Exclude})}, nil
	}
	if c.Variants[cp.From] == nil {
		return []Step{own(&CopyStep{
			From:    Source{Kind: FromImage, Name: cp.From},
			Sources: []string{inDir("/", cp.Source)},
			Dest:    requirementDest(Artifact{Source: cp.Source, Destination: cp.Destination}, livesIn),
			Exclude: cp.Exclude,
		})}, nil
	}
	other, err := c.Resolve(cp.From)
	if err != nil {
		return nil, err
	}
	otherIn := path.Clean(other.Lives.In)
	from := Source{Kind: FromStage, Name: cp.From}
	if cp.Shorthand || (cp.Source == "" && cp.Destination == "") {
		steps := []Step{own(&CopyStep{From: from, Sources: []string{otherIn + "/"}, Dest: livesIn + "/", Exclude: cp.Exclude})}
		// Only a variant with a base image has LocalLibPrefix: its setup made it.
		if other.Base != nil && *other.Base != "" {
			steps = append(steps, own(&CopyStep{From: from, Sources: []string{LocalLibPrefix + "/"}, Dest: LocalLibPrefix + "/"}))
		}
		return steps, nil
	}
	src := inDir(otherIn, cp.Source)
	dest := cp.Destination
	if dest == "" {
		// The same path as the source: absolute sources land where they were,
		// relative ones under this variant's lives.in.
		dest = cp.Source
	}
	return []Step{own(&CopyStep{From: from, Sources: []string{src}, Dest: inDir(livesIn, dest), Exclude: cp.Exclude})}, nil
}
