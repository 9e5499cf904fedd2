// Package openstack holds the migrate pool's activities: they talk to the two
// deployments (regions) of an OpenStack parallel-cloud migration with gophercloud,
// through one Keystone. The VM migration's activities (vm*.go) move one server from
// the source deployment to the destination; other files hold the stages' checks,
// tasks and notifications.
//
// Every activity is idempotent: it first looks for its own earlier work by the
// metadata markers it leaves (see markers.go) and reuses it instead of creating
// anything twice.
package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gos "github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// computeMicroversion is the Nova API microversion every compute call uses: 2.37
// or later lets servers be created with networks "none"; 2.10 lets an admin read
// and create another user's keypairs; 2.47 shows the flavor's name in a server.
const computeMicroversion = "2.79"

// Activities are the migrate pool's OpenStack activities. The worker builds one
// with New and registers it as a pointer; its exported methods are the activities,
// named as in activities/contract, so it has no other exported methods.
//
// Clients are built lazily on first use, so a worker whose configuration names no
// OpenStack still starts; the activities then fail with an error that says what
// to configure.
type Activities struct {
	cfg  config.OpenStack
	poll time.Duration
	// copyRate caps MigrateCopyImage's bytes per second; 0 means no cap.
	copyRate int64
	// stateDir is the worker's state directory, where MigrationNotify and
	// RecordBatteryReport keep their records (notify.go, battery.go).
	stateDir string

	mu        sync.Mutex
	providers map[string]*gophercloud.ProviderClient // by project name ("" = the account's own)
}

// Option configures Activities.
type Option func(*Activities) error

// WithPoll sets how often activities that wait (for a server's status, an image's)
// ask again; the default is 2 seconds.
func WithPoll(d time.Duration) Option {
	return func(a *Activities) error {
		if d <= 0 {
			return fmt.Errorf("poll interval %s is not positive", d)
		}
		a.poll = d
		return nil
	}
}

// WithCopyRate caps the bandwidth of image copies at bytesPerSecond each; the
// default is no cap.
func WithCopyRate(bytesPerSecond int64) Option {
	return func(a *Activities) error {
		if bytesPerSecond <= 0 {
			return fmt.Errorf("copy rate %d bytes/s is not positive", bytesPerSecond)
		}
		a.copyRate = bytesPerSecond
		return nil
	}
}

// CopyRateEnv names the environment variable that caps each image copy's
// bandwidth (bytes per second) on a worker, like WithCopyRate: for sharing a thin
// link between deployments (the integration tests use it to catch a copy in
// flight).
const CopyRateEnv = "CONVEYOR_OPENSTACK_COPY_RATE"

// New returns the activities for the deployments in c.OpenStack. It does not
// contact Keystone: the first activity does. An openstack.passwordFile that cannot
// be read is an error now, so that the worker refuses to start; the file is read
// again at each authentication, so a rotated password needs no restart.
func New(c config.Config, opts ...Option) (*Activities, error) {
	if c.OpenStack.Password == "" && c.OpenStack.PasswordFile != "" {
		if _, err := password(c.OpenStack); err != nil {
			return nil, err
		}
	}
	a := &Activities{cfg: c.OpenStack, poll: 2 * time.Second, stateDir: c.StateDir, providers: map[string]*gophercloud.ProviderClient{}}
	if v := os.Getenv(CopyRateEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive number of bytes per second", CopyRateEnv, v)
		}
		a.copyRate = n
	}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// clients are one deployment's service clients, scoped to one project.
type clients struct {
	Deployment string
	Region     string
	Provider   *gophercloud.ProviderClient
	Compute    *gophercloud.ServiceClient
	Image      *gophercloud.ServiceClient
	Network    *gophercloud.ServiceClient
	Identity   *gophercloud.ServiceClient
}

// checkConfig says what is missing from the openstack section of the configuration.
func checkConfig(c config.OpenStack) error {
	var missing []string
	if c.AuthURL == "" {
		missing = append(missing, "openstack.authURL")
	}
	if c.Username == "" {
		missing = append(missing, "openstack.username")
	}
	if c.Password == "" && c.PasswordFile == "" {
		missing = append(missing, "openstack.password (or openstack.passwordFile)")
	}
	if c.ProjectName == "" {
		missing = append(missing, "openstack.projectName")
	}
	if len(c.Deployments) == 0 {
		missing = append(missing, "openstack.deployments")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the configuration's OpenStack section is incomplete: set %s (the local rig fills them: `conveyor dev up --with openstack`)", strings.Join(missing, ", "))
	}
	return nil
}

// password returns the account's password, read from PasswordFile when Password
// is empty.
func password(c config.OpenStack) (string, error) {
	if c.Password != "" {
		return c.Password, nil
	}
	return config.SecretFile("openstack.passwordFile", c.PasswordFile)
}

// provider returns an authenticated provider whose token is scoped to project, or
// to the account's own project (openstack.projectName) when project is empty. The
// account must have a role on project: migrating a project's servers creates them
// in that project.
func (a *Activities) provider(ctx context.Context, project string) (*gophercloud.ProviderClient, error) {
	return providerFor(ctx, a.cfg, project, &a.mu, a.providers)
}

func providerFor(ctx context.Context, c config.OpenStack, project string, mu *sync.Mutex, cache map[string]*gophercloud.ProviderClient) (*gophercloud.ProviderClient, error) {
	if err := checkConfig(c); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := cache[project]; ok {
		return p, nil
	}
	pw, err := password(c)
	if err != nil {
		return nil, err
	}
	domain := c.Domain
	if domain == "" {
		domain = "Default"
	}
	scope := project
	if scope == "" {
		scope = c.ProjectName
	}
	p, err := gos.NewClient(c.AuthURL)
	if err != nil {
		return nil, fmt.Errorf("openstack.authURL %q: %w", c.AuthURL, err)
	}
	// Every call to the clouds' APIs is a span of the activity's trace.
	p.HTTPClient = http.Client{Transport: tracing.Transport("openstack", nil)}
	err = gos.Authenticate(ctx, p, gophercloud.AuthOptions{
		IdentityEndpoint: c.AuthURL,
		Username:         c.Username,
		Password:         pw,
		DomainName:       domain,
		AllowReauth:      true,
		Scope:            &gophercloud.AuthScope{ProjectName: scope, DomainName: domain},
	})
	if err != nil {
		var unauth gophercloud.ErrUnexpectedResponseCode
		if errors.As(err, &unauth) && unauth.Actual == 401 && project != "" {
			return nil, fmt.Errorf("authenticating as %s to project %s at %s: %w (the account needs a role on the project: `openstack role add --user %s --project %s admin`)", c.Username, scope, c.AuthURL, err, c.Username, scope)
		}
		return nil, fmt.Errorf("authenticating as %s to project %s at %s: %w (check openstack.authURL, username, password and projectName)", c.Username, scope, c.AuthURL, err)
	}
	cache[project] = p
	return p, nil
}

// clients returns deployment's service clients scoped to project ("" = the
// account's own project).
func (a *Activities) clients(ctx context.Context, deployment, project string) (*clients, error) {
	if err := checkConfig(a.cfg); err != nil {
		return nil, err
	}
	p, err := a.provider(ctx, project)
	if err != nil {
		return nil, err
	}
	return newClients(a.cfg, p, deployment)
}

func newClients(c config.OpenStack, p *gophercloud.ProviderClient, deployment string) (*clients, error) {
	d, ok := c.Deployments[deployment]
	if !ok {
		names := make([]string, 0, len(c.Deployments))
		for n := range c.Deployments {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("unknown deployment %q: openstack.deployments has %s", deployment, strings.Join(names, ", "))
	}
	region := d.Region
	if region == "" {
		region = deployment
	}
	eo := gophercloud.EndpointOpts{Region: region, Availability: gophercloud.AvailabilityPublic}
	cl := &clients{Deployment: deployment, Region: region, Provider: p}
	var err error
	if cl.Compute, err = gos.NewComputeV2(p, eo); err != nil {
		return nil, fmt.Errorf("finding the compute endpoint of region %s: %w", region, err)
	}
	cl.Compute.Microversion = computeMicroversion
	if cl.Image, err = gos.NewImageV2(p, eo); err != nil {
		return nil, fmt.Errorf("finding the image endpoint of region %s: %w", region, err)
	}
	if cl.Network, err = gos.NewNetworkV2(p, eo); err != nil {
		return nil, fmt.Errorf("finding the network endpoint of region %s: %w", region, err)
	}
	if cl.Identity, err = gos.NewIdentityV3(p, gophercloud.EndpointOpts{Availability: gophercloud.AvailabilityPublic}); err != nil {
		return nil, fmt.Errorf("finding the identity endpoint: %w", err)
	}
	return cl, nil
}
