import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeWildcards } from './nag';

/** A database pgferry connects to, and where it is on the network. */
export interface DatabaseEndpoint {
  /** Names the rules for this database (unique in the stack). */
  readonly id: string;
  readonly port: number;
  /**
   * The database's security group (in the VPC pgferry runs in).
   * @default none: give `cidr`
   */
  readonly securityGroupId?: string;
  /**
   * The address range the database is in.
   * @default none: give `securityGroupId`
   */
  readonly cidr?: string;
  /**
   * Add an ingress rule for pgferry's clients to the database's security group.
   * @default true
   */
  readonly allowIngress?: boolean;
}

/** How pgferry reaches AWS APIs without a NAT gateway. */
export interface VpcEndpointsProps {
  /**
   * `create`: an S3 gateway endpoint on the subnets' route tables; `existing`: the VPC has one.
   * @default create
   */
  readonly s3?: 'create' | 'existing';
  /**
   * `create`: interface endpoints (INTERFACE_ENDPOINT_SERVICES) in pgferry's subnets;
   * `existing`: the VPC has them, with private DNS, in `existingSecurityGroupIds`.
   * @default create
   */
  readonly interface?: 'create' | 'existing';
  /**
   * With `interface: existing`: the security groups of the VPC's interface endpoints.
   * @default none
   */
  readonly existingSecurityGroupIds?: readonly string[];
  /**
   * Add an ingress rule for pgferry's clients to those security groups.
   * @default true
   */
  readonly allowIngressToExisting?: boolean;
}

export interface NetworkProps {
  /**
   * An existing VPC to run in (the databases' VPC); `subnets` must select private subnets of it
   * whose route tables are known to CDK (`Vpc.fromVpcAttributes` with route table ids) when the S3
   * gateway endpoint is created.
   * @default a new VPC, built from `vpcProps`
   */
  readonly existingVpc?: ec2.IVpc;
  /**
   * Settings of the new VPC (ignored with `existingVpc`); merged over the defaults: two zones,
   * isolated private subnets, no NAT gateway.
   * @default the defaults
   */
  readonly vpcProps?: ec2.VpcProps;
  /** The endpoints through which the functions and tasks reach AWS APIs. */
  readonly endpoints?: VpcEndpointsProps;
  /** The databases pgferry's database clients may connect to; nothing else is reachable but the endpoints. */
  readonly databases: readonly DatabaseEndpoint[];
  /**
   * How long the new VPC's flow logs are kept.
   * @default three months
   */
  readonly flowLogRetention?: logs.RetentionDays;
}

/**
 * The AWS APIs pgferry's functions and tasks call from inside the VPC, besides S3 (a gateway
 * endpoint): database passwords, the image pull (ECR API and registry), the task's logs, STS, the
 * runner's calls to Step Functions, and KMS.
 */
export const INTERFACE_ENDPOINT_SERVICES: Readonly<Record<string, ec2.InterfaceVpcEndpointAwsService>> = {
  SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
  EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
  EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
  Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  Sts: ec2.InterfaceVpcEndpointAwsService.STS,
  StepFunctions: ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
  Kms: ec2.InterfaceVpcEndpointAwsService.KMS,
};

const HTTPS = ec2.Port.tcp(443);

/** The construct id CDK gives the stack's one AwsCustomResource function (aws-cdk-lib/custom-resources). */
const AWS_CUSTOM_RESOURCE_PROVIDER_ID = 'AWS679f53fac002430cb0da5b7982bd2287';

const DEFAULT_VPC_PROPS: ec2.VpcProps = {
  maxAzs: 2,
  natGateways: 0,
  subnetConfiguration: [{ name: 'Private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
};

/**
 * Where pgferry runs: the VPC (the databases' own, or a new one with flow logs), the VPC
 * endpoints through which it reaches AWS APIs without a NAT gateway, and two security groups that
 * accept no connection and may open only these:
 *
 * - *database clients* (the functions that connect to databases and the pg-tools tasks): the
 *   endpoints, S3 (its prefix list) and the configured databases' ports;
 * - *AWS API clients* (every other function): the endpoints and S3.
 *
 * No rule anywhere opens 0.0.0.0/0 or ::/0.
 */
export class Network extends Construct {
  readonly vpc: ec2.IVpc;
  /** The private subnets pgferry's functions and tasks run in. */
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /** The security group of pgferry's database clients. */
  readonly databaseClients: ec2.SecurityGroup;
  /** The security group of the functions that call AWS APIs only. */
  readonly awsApiClients: ec2.SecurityGroup;
  /** The security group of the interface endpoints this construct created (none with existing ones). */
  readonly endpointsSecurityGroup?: ec2.SecurityGroup;
  /** The id of the region's S3 prefix list (found at deploy time): where the gateway endpoint routes. */
  readonly s3PrefixListId: string;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = props.existingVpc ?? this.createVpc(props);
    const clientGroup = (groupId: string, description: string) =>
      new ec2.SecurityGroup(this, groupId, { vpc: this.vpc, description, allowAllOutbound: false });
    this.databaseClients = clientGroup(
      'DatabaseClients',
      'pgferry database clients: the databases ports, the VPC endpoints and S3 out, nothing in',
    );
    this.awsApiClients = clientGroup(
      'AwsApiClients',
      'pgferry functions: the VPC endpoints and S3 out, nothing in',
    );
    const clients = [this.databaseClients, this.awsApiClients];

    const endpoints = props.endpoints ?? {};
    if ((endpoints.s3 ?? 'create') === 'create') {
      this.vpc.addGatewayEndpoint('S3', {
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [this.subnets],
      });
    }
    this.s3PrefixListId = this.lookUpS3PrefixList();
    for (const group of clients) {
      group.addEgressRule(
        ec2.Peer.prefixList(this.s3PrefixListId),
        HTTPS,
        'S3, through the gateway endpoint',
      );
    }

    if ((endpoints.interface ?? 'create') === 'create') {
      this.endpointsSecurityGroup = this.createInterfaceEndpoints();
      for (const group of clients) group.connections.allowTo(this.endpointsSecurityGroup, HTTPS, 'AWS APIs');
    } else {
      (endpoints.existingSecurityGroupIds ?? []).forEach((groupId, i) => {
        const existing = ec2.SecurityGroup.fromSecurityGroupId(this, `ExistingEndpoints${i + 1}`, groupId, {
          mutable: endpoints.allowIngressToExisting ?? true,
          allowAllOutbound: false,
        });
        for (const group of clients)
          group.connections.allowTo(existing, HTTPS, 'AWS APIs (existing endpoints)');
      });
    }
    this.allowDatabases(props.databases);
  }

  /**
   * One rule per security group (or range) and port, however many databases share it (two rules
   * alike fail at deploy time): egress from the database clients and, unless every database in the
   * group says `allowIngress: false`, the group's ingress rule.
   */
  private allowDatabases(databases: readonly DatabaseEndpoint[]): void {
    const rules = new Map<string, { ids: string[]; db: DatabaseEndpoint; ingress: boolean }>();
    const add = (key: string, db: DatabaseEndpoint) => {
      const rule = rules.get(key) ?? { ids: [], db, ingress: false };
      rule.ids.push(db.id);
      rule.ingress ||= db.allowIngress ?? true;
      rules.set(key, rule);
    };
    for (const db of databases) {
      if (db.securityGroupId) add(`${db.securityGroupId}:${db.port}`, db);
      if (db.cidr) add(`${db.cidr}:${db.port}`, { ...db, securityGroupId: undefined });
    }
    for (const { ids, db, ingress } of rules.values()) {
      const port = ec2.Port.tcp(db.port);
      const description = `pgferry to ${ids.join(', ')}`;
      if (db.securityGroupId) {
        const group = ec2.SecurityGroup.fromSecurityGroupId(
          this,
          `${ids[0]}SecurityGroup`,
          db.securityGroupId,
          {
            mutable: ingress,
            allowAllOutbound: false,
          },
        );
        // Egress from pgferry and, when the group is mutable, the database's ingress rule.
        this.databaseClients.connections.allowTo(group, port, description);
      } else if (db.cidr) {
        this.databaseClients.addEgressRule(ec2.Peer.ipv4(db.cidr), port, description);
      }
    }
  }

  /**
   * Interface endpoints for INTERFACE_ENDPOINT_SERVICES in pgferry's subnets (one per zone),
   * with private DNS, in a security group that only pgferry's clients may reach.
   */
  private createInterfaceEndpoints(): ec2.SecurityGroup {
    const group = new ec2.SecurityGroup(this, 'Endpoints', {
      vpc: this.vpc,
      description: 'pgferry VPC endpoints: HTTPS from pgferry clients only',
      allowAllOutbound: false,
    });
    for (const [name, service] of Object.entries(INTERFACE_ENDPOINT_SERVICES)) {
      this.vpc.addInterfaceEndpoint(name, {
        service,
        subnets: { ...this.subnets, onePerAz: true },
        securityGroups: [group],
        // No rule for the whole VPC: only pgferry's security groups, added by the caller.
        open: false,
        privateDnsEnabled: true,
      });
    }
    return group;
  }

  /**
   * The id of the region's S3 prefix list (`com.amazonaws.<region>.s3`), for the egress rule to
   * the gateway endpoint. Synth is offline, so it is looked up at deploy time by a custom
   * resource (a Lambda function outside the VPC allowed `ec2:DescribeManagedPrefixLists` only).
   */
  private lookUpS3PrefixList(): string {
    const lookup = new cr.AwsCustomResource(this, 'S3PrefixList', {
      onUpdate: {
        service: 'EC2',
        action: 'describeManagedPrefixLists',
        parameters: {
          Filters: [{ Name: 'prefix-list-name', Values: [`com.amazonaws.${Stack.of(this).region}.s3`] }],
        },
        physicalResourceId: cr.PhysicalResourceId.of('s3-prefix-list'),
        outputPaths: ['PrefixLists.0.PrefixListId'],
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
      installLatestAwsSdk: false,
    });
    acknowledgeWildcards(lookup, {
      'Resource::*': 'ec2:DescribeManagedPrefixLists accepts no narrower resource (the only action allowed)',
    });
    // The function behind every AwsCustomResource of the stack: one per stack, named by CDK.
    const provider = Stack.of(this).node.tryFindChild(AWS_CUSTOM_RESOURCE_PROVIDER_ID);
    if (provider) {
      acknowledge(
        provider,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        "the AWS-managed execution policy of CDK's AwsCustomResource function: writes to its own log group",
      );
    }
    return lookup.getResponseField('PrefixLists.0.PrefixListId');
  }

  private createVpc(props: NetworkProps): ec2.Vpc {
    const { maxAzs, ...merged } = { ...DEFAULT_VPC_PROPS, ...props.vpcProps };
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ...merged,
      // Naming the zones replaces their number.
      ...(merged.availabilityZones ? {} : { maxAzs }),
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(
            new logs.LogGroup(this, 'FlowLogs', {
              retention: props.flowLogRetention ?? logs.RetentionDays.THREE_MONTHS,
              removalPolicy: RemovalPolicy.RETAIN,
            }),
          ),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });
    return vpc;
  }
}
