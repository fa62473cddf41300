/**
 * Where pgferry runs: the VPC, the endpoints through which it reaches AWS without a NAT gateway,
 * and what its security groups let it connect to — the endpoints, S3 and the configured
 * databases' ports, nothing else, nowhere 0.0.0.0/0.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { INTERFACE_ENDPOINT_SERVICES } from '../../../lib/network';
import { existingVpc, minimalConfig, templateOf } from './fixtures';

const template = templateOf();
/** A new VPC: its database is in a range routed to it. */
const created = templateOf(
  minimalConfig({
    vpc: {
      mode: 'create',
      cidr: '10.70.0.0/16',
      availabilityZones: ['eu-west-1a', 'eu-west-1b'],
      routedCidrs: ['10.20.0.0/16'],
    },
    databases: [{ ...minimalConfig().databases[0], network: { cidr: '10.20.0.0/16' } }],
  }),
);

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
const resources = (t: Template) => t.toJSON().Resources as Resources;

/** The logical id of the security group whose description matches. */
function groupId(t: Template, description: RegExp): string {
  const ids = Object.entries(resources(t))
    .filter(
      ([, r]) =>
        r.Type === 'AWS::EC2::SecurityGroup' && description.test(String(r.Properties.GroupDescription)),
    )
    .map(([id]) => id);
  expect(ids).toHaveLength(1);
  return ids[0];
}

/** Every egress rule of the template (inline and separate), as `{group, to, port}`. */
function egressRules(t: Template): { group: string; to: string; ports: string }[] {
  const rules: { group: string; to: string; ports: string }[] = [];
  const peer = (rule: Record<string, unknown>) =>
    JSON.stringify(
      rule.CidrIp ?? rule.CidrIpv6 ?? rule.DestinationSecurityGroupId ?? rule.DestinationPrefixListId,
    );
  for (const [id, r] of Object.entries(resources(t))) {
    if (r.Type === 'AWS::EC2::SecurityGroup') {
      for (const rule of (r.Properties.SecurityGroupEgress ?? []) as Record<string, unknown>[])
        rules.push({
          group: id,
          to: peer(rule),
          ports: `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`,
        });
    }
    if (r.Type === 'AWS::EC2::SecurityGroupEgress') {
      const group =
        (r.Properties.GroupId as { 'Fn::GetAtt': [string] })['Fn::GetAtt']?.[0] ??
        String(r.Properties.GroupId);
      rules.push({
        group,
        to: peer(r.Properties),
        ports: `${r.Properties.IpProtocol}:${r.Properties.FromPort}-${r.Properties.ToPort}`,
      });
    }
  }
  return rules;
}

const ref = (id: string) => JSON.stringify({ 'Fn::GetAtt': [id, 'GroupId'] });

function s3PrefixList(t: Template): string {
  const [id] = Object.keys(t.findResources('Custom::AWS'));
  return JSON.stringify({ 'Fn::GetAtt': [id, 'PrefixLists.0.PrefixListId'] });
}

test.each([
  ["the databases' VPC", template],
  ['a new VPC', created],
])('no security group of %s may connect to 0.0.0.0/0 or ::/0', (_name, t) => {
  const rules = egressRules(t);
  expect(rules.length).toBeGreaterThan(0);
  for (const rule of rules) expect(rule.to).not.toMatch(/"0\.0\.0\.0\/0"|"::\/0"/);
});

test('the database clients reach exactly the endpoints, S3 and the configured databases on their ports', () => {
  const clients = groupId(template, /^pgferry database clients/);
  const endpoints = groupId(template, /^pgferry VPC endpoints/);
  const rules = egressRules(template)
    .filter((r) => r.group === clients)
    .map(({ to, ports }) => `${to} ${ports}`)
    .sort();
  expect(rules).toEqual(
    [
      `${ref(endpoints)} tcp:443-443`,
      `${s3PrefixList(template)} tcp:443-443`,
      // shop (and the shop-drill target, one rule for both), billing by range, shop-pg17, the
      // analytics server entry.
      '"sg-0123456789abcdef0" tcp:5432-5432',
      '"10.20.0.0/16" tcp:5432-5432',
      '"sg-0fedcba9876543210" tcp:5432-5432',
      '"sg-0a1b2c3d4e5f60733" tcp:5432-5432',
    ].sort(),
  );
});

test('the functions that call only AWS APIs reach exactly the endpoints and S3', () => {
  const apiClients = groupId(template, /^pgferry functions: the VPC endpoints and S3/);
  const endpoints = groupId(template, /^pgferry VPC endpoints/);
  expect(
    egressRules(template)
      .filter((r) => r.group === apiClients)
      .map(({ to, ports }) => `${to} ${ports}`)
      .sort(),
  ).toEqual([`${ref(endpoints)} tcp:443-443`, `${s3PrefixList(template)} tcp:443-443`].sort());
});

test("pgferry's security groups accept no inbound connection", () => {
  for (const description of [/^pgferry database clients/, /^pgferry functions/]) {
    const id = groupId(template, description);
    expect(resources(template)[id].Properties.SecurityGroupIngress).toBeUndefined();
    template.resourcePropertiesCountIs(
      'AWS::EC2::SecurityGroupIngress',
      { GroupId: { 'Fn::GetAtt': [id, 'GroupId'] } },
      0,
    );
  }
});

test("the endpoints accept HTTPS from pgferry's security groups only, not from the whole VPC", () => {
  const endpoints = groupId(template, /^pgferry VPC endpoints/);
  expect(resources(template)[endpoints].Properties.SecurityGroupIngress).toBeUndefined();
  const ingress = Object.values(
    template.findResources('AWS::EC2::SecurityGroupIngress', {
      Properties: { GroupId: { 'Fn::GetAtt': [endpoints, 'GroupId'] } },
    }),
  ).map(
    (r) =>
      (r as { Properties: { SourceSecurityGroupId: { 'Fn::GetAtt': [string] }; FromPort: number } })
        .Properties,
  );
  expect(ingress.map((r) => [r.SourceSecurityGroupId['Fn::GetAtt'][0], r.FromPort]).sort()).toEqual(
    [
      [groupId(template, /^pgferry database clients/), 443],
      [groupId(template, /^pgferry functions/), 443],
    ].sort(),
  );
});

test('an interface endpoint with private DNS for each AWS API the functions and tasks call', () => {
  const endpoints = Object.values(
    template.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } }),
  ).map((r) => (r as { Properties: { ServiceName: string; PrivateDnsEnabled: boolean } }).Properties);
  expect(endpoints).toHaveLength(Object.keys(INTERFACE_ENDPOINT_SERVICES).length);
  expect(endpoints.map((e) => e.ServiceName).sort()).toEqual(
    ['secretsmanager', 'ecr.api', 'ecr.dkr', 'logs', 'sts', 'states', 'kms']
      .map((service) => `com.amazonaws.eu-west-1.${service}`)
      .sort(),
  );
  for (const e of endpoints) expect(e.PrivateDnsEnabled).toBe(true);
});

test("S3 is reached through a gateway endpoint on the private subnets' route tables", () => {
  template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
    ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] },
    VpcEndpointType: 'Gateway',
    RouteTableIds: ['rtb-0a1b2c3d4e5f60711', 'rtb-0a1b2c3d4e5f60722'],
  });
});

test("the S3 prefix list is looked up at deploy time by the region's name for it", () => {
  const [lookup] = Object.values(template.findResources('Custom::AWS')) as {
    Properties: { Create: unknown };
  }[];
  expect(JSON.stringify(lookup.Properties.Create)).toContain('com.amazonaws.eu-west-1.s3');
  expect(JSON.stringify(lookup.Properties.Create)).toContain('describeManagedPrefixLists');
});

test("with the VPC's own endpoints, none is created and pgferry may reach theirs", () => {
  const t = templateOf(
    minimalConfig({
      vpc: existingVpc({
        endpoints: { s3: 'existing', interface: 'existing', securityGroupIds: ['sg-0aaaaaaaaaaaaaaaa'] },
      }),
    }),
  );
  t.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
  const clients = groupId(t, /^pgferry database clients/);
  expect(egressRules(t).filter((r) => r.group === clients && r.to === '"sg-0aaaaaaaaaaaaaaaa"')).toEqual([
    expect.objectContaining({ ports: 'tcp:443-443' }),
  ]);
  t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
    GroupId: 'sg-0aaaaaaaaaaaaaaaa',
    FromPort: 443,
    SourceSecurityGroupId: { 'Fn::GetAtt': [clients, 'GroupId'] },
  });
});

test("a database's security group lets the database clients in on its port", () => {
  template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
    GroupId: 'sg-0123456789abcdef0',
    SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DatabaseClients'), 'GroupId'] },
    IpProtocol: 'tcp',
    FromPort: 5432,
    ToPort: 5432,
  });
});

test('two entries behind one security group and port get one rule (two alike fail at deploy time)', () => {
  template.resourcePropertiesCountIs(
    'AWS::EC2::SecurityGroupEgress',
    { DestinationSecurityGroupId: 'sg-0123456789abcdef0' },
    1,
  );
  template.resourcePropertiesCountIs(
    'AWS::EC2::SecurityGroupIngress',
    { GroupId: 'sg-0123456789abcdef0' },
    1,
  );
});

test("with allowIngress false, the database's security group is left alone", () => {
  const config = minimalConfig();
  const db = {
    ...config.databases[0],
    network: { securityGroupId: 'sg-0123456789abcdef0', allowIngress: false },
  };
  templateOf({ ...config, databases: [db] }).resourcePropertiesCountIs(
    'AWS::EC2::SecurityGroupIngress',
    { GroupId: 'sg-0123456789abcdef0' },
    0,
  );
});

test('a new VPC has private subnets only: no NAT gateway, no internet gateway', () => {
  created.resourceCountIs('AWS::EC2::NatGateway', 0);
  created.resourceCountIs('AWS::EC2::InternetGateway', 0);
  created.resourcePropertiesCountIs('AWS::EC2::Subnet', { MapPublicIpOnLaunch: true }, 0);
});

test('a new VPC logs all its traffic', () => {
  created.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL' });
});

test("in the databases' VPC, no VPC is created and the functions run in its private subnets", () => {
  template.resourceCountIs('AWS::EC2::VPC', 0);
  template.hasResourceProperties('AWS::Lambda::Function', {
    VpcConfig: {
      SubnetIds: ['subnet-0a1b2c3d4e5f60711', 'subnet-0a1b2c3d4e5f60722'],
      SecurityGroupIds: Match.anyValue(),
    },
  });
});
