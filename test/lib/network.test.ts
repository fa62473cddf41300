/** Where pgferry runs: the VPC, and what its database clients may connect to. */
import { Match } from 'aws-cdk-lib/assertions';
import { minimalConfig, templateOf } from './fixtures';

const template = templateOf();

function databaseClientsGroup(): { SecurityGroupEgress: unknown[]; SecurityGroupIngress?: unknown[] } {
  const groups = template.findResources('AWS::EC2::SecurityGroup', {
    Properties: { GroupDescription: Match.stringLikeRegexp('database clients') },
  });
  const [group] = Object.values(groups) as { Properties: { SecurityGroupEgress: unknown[] } }[];
  return group.Properties;
}

test("the database clients' security group accepts no inbound connection", () => {
  expect(databaseClientsGroup().SecurityGroupIngress).toBeUndefined();
  template.resourcePropertiesCountIs(
    'AWS::EC2::SecurityGroupIngress',
    {
      SourceSecurityGroupId: Match.anyValue(),
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DatabaseClients'), 'GroupId'] },
    },
    0,
  );
});

test('the database clients may connect out only to HTTPS and to the databases on their ports', () => {
  expect(databaseClientsGroup().SecurityGroupEgress).toEqual([
    expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    expect.objectContaining({ CidrIp: '10.20.0.0/16', IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432 }),
  ]);
  template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
    DestinationSecurityGroupId: 'sg-0123456789abcdef0',
    IpProtocol: 'tcp',
    FromPort: 5432,
    ToPort: 5432,
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

test("with allowIngress false, the database's security group is left alone", () => {
  const config = minimalConfig();
  const db = {
    ...config.databases[0],
    network: { securityGroupId: 'sg-0123456789abcdef0', allowIngress: false },
  };
  templateOf({ ...config, databases: [db] }).resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
});

test('a new VPC logs all its traffic', () => {
  template.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL' });
});

test('a new VPC reaches S3 through a gateway endpoint', () => {
  template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
    ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] },
    VpcEndpointType: 'Gateway',
  });
});

test('with an existing VPC, no VPC is created and the database clients run in its subnets', () => {
  const t = templateOf(
    minimalConfig({
      vpc: {
        mode: 'existing',
        vpcId: 'vpc-0123456789abcdef0',
        availabilityZones: ['eu-west-1a', 'eu-west-1b'],
        privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      },
    }),
  );
  t.resourceCountIs('AWS::EC2::VPC', 0);
  t.hasResourceProperties('AWS::Lambda::Function', {
    VpcConfig: {
      SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      SecurityGroupIds: Match.anyValue(),
    },
  });
});
